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
"""

import os

import jax

X64_ENABLED = os.environ.get("MIXBENCH_X64", "1") != "0"
jax.config.update("jax_enable_x64", X64_ENABLED)

CACHE_DIR = os.path.expanduser(os.environ.get("MIXBENCH_JAX_CACHE", "~/.cache/mixbench/jax"))
if CACHE_DIR and jax.config.jax_compilation_cache_dir is None:
    jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
    # the EM loop compiles in ~0.3-3 s: worth caching even when short
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
