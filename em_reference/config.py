"""The one place where mixbench sets JAX's numerical precision.

Importing any of the three packages (``em_reference``, ``models``, ``experiments``) imports this
module first, which turns on ``jax_enable_x64`` so that every array is float64 unless a caller
asks for float32 explicitly (the estimators take ``dtype="float32"``). Set the environment
variable ``MIXBENCH_X64=0`` before the first import to leave JAX's default (float32) in place.

It also turns on JAX's persistent compilation cache, so that a new process fitting the same
shapes loads the compiled EM loop from disk instead of compiling it again (first-fit latency).
The cache lives in ``MIXBENCH_JAX_CACHE`` (default ``~/.cache/mixbench/jax``); set it to an
empty string to turn the cache off. Within one process, jit's own cache already means a second
fit of same-shaped data pays no compilation.

``one_blas_thread()`` (a context manager, also a decorator) is what every fitter runs under.
"""

import contextlib
import os

import jax
from threadpoolctl import threadpool_limits

X64_ENABLED = os.environ.get("MIXBENCH_X64", "1") != "0"
jax.config.update("jax_enable_x64", X64_ENABLED)

CACHE_DIR = os.path.expanduser(os.environ.get("MIXBENCH_JAX_CACHE", "~/.cache/mixbench/jax"))
if CACHE_DIR and jax.config.jax_compilation_cache_dir is None:
    jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
    # the EM loop compiles in ~0.3-3 s: worth caching even when short
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


@contextlib.contextmanager
def one_blas_thread():
    """Hold BLAS (OpenBLAS, MKL) to one thread inside the block or decorated function.

    XLA's CPU LAPACK calls (the Cholesky factorisations inside jitted fits) go to OpenBLAS,
    whose idle threads busy-spin and take the cores XLA's own thread pool needs. Measured on
    the 2-core CI box: EM at (100,000, 32, 16, full) 142 -> 104 ms per iteration; NUTS on a
    900-point Gaussian mixture (2 chains x 600 steps) 7.2 -> 2.6 s. The matrices factorised
    are K x D x D, too small for a second BLAS thread to help.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield
