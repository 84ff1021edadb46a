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

``one_blas_thread()`` (a context manager, also a decorator) is what every fitter runs under;
``one_native_thread()`` also holds OpenMP (scikit-learn's k-means) to one thread.

``release_compiled_code()`` bounds what compiled programs hold in a long process: every new
data shape compiles a new EM loop, whose code lives in memory maps of its own; the
estimators call it after each fit.
"""

import contextlib
import functools
import os
import tempfile

import jax
from threadpoolctl import ThreadpoolController

X64_ENABLED = os.environ.get("MIXBENCH_X64", "1") != "0"
jax.config.update("jax_enable_x64", X64_ENABLED)

CACHE_DIR = os.path.expanduser(os.environ.get("MIXBENCH_JAX_CACHE", "~/.cache/mixbench/jax"))


def _atomic_cache_writes():
    """Make the persistent cache's entries appear whole or not at all.

    JAX's file cache (jax._src.lru_cache.LRUCache, eviction off: its default) writes an entry
    in place, so another process sharing the folder (pytest-xdist workers, a grid's workers)
    can read it half-written, and a process killed mid-write leaves it truncated; reading
    such an entry crashed a worker with SIGSEGV inside XLA. Entries are written to a
    temporary file in the same folder and renamed into place (atomic on POSIX). With
    eviction on (jax_compilation_cache_max_size set) JAX's own locked put is kept. Returns
    whether the cache class in use writes atomically."""
    try:
        from jax._src import compilation_cache, lru_cache
    except ImportError:  # pragma: no cover - a JAX without these modules
        return False
    base = getattr(compilation_cache, "LRUCache", None)
    suffix = getattr(lru_cache, "_CACHE_SUFFIX", None)
    if base is None or suffix is None:  # pragma: no cover - JAX changed its cache
        return False
    if getattr(base, "writes_atomically", False):
        return True

    class AtomicFileCache(base):
        writes_atomically = True

        def put(self, key, value):
            if self.eviction_enabled or not key:
                return super().put(key, value)
            target = self.path / f"{key}{suffix}"
            if target.exists():
                return None
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{key[:16]}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(value)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return None

    compilation_cache.LRUCache = AtomicFileCache
    return True


if CACHE_DIR and jax.config.jax_compilation_cache_dir is None:
    _atomic_cache_writes()
    jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
    # the EM loop compiles in ~0.3-3 s: worth caching even when short
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


@functools.cache
def _native_thread_pools():
    """The process's BLAS and OpenMP libraries, found once: scanning them takes ~1-2 ms, more
    than a small fit. scipy.linalg is imported first because XLA's CPU LAPACK kernels call
    scipy's own OpenBLAS (a different library from numpy's), which an earlier scan would miss.
    """
    import scipy.linalg  # noqa: F401

    return ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread():
    """Hold BLAS (OpenBLAS, MKL) to one thread inside the block or decorated function.

    After a multi-threaded call, OpenBLAS's idle threads busy-spin (about 0.1 s each time) and
    take the cores XLA's own thread pool needs. Inside a fit, BLAS is called by XLA's CPU
    LAPACK kernels (the K Cholesky factorisations of each M-step) and by numpy on the host
    (centring the data, k-means); held to one thread, OpenBLAS never wakes its workers
    (measurements: benchmarks/README.md). The matrices involved are K x D x D or one pass
    over X, too small for a second BLAS thread to pay. Threads still spinning from the
    caller's own BLAS calls just before a fit are not stopped by this: they go idle by
    themselves within ~0.1 s.
    """
    with _native_thread_pools().limit(limits=1, user_api="blas"):
        yield


@contextlib.contextmanager
def one_native_thread():
    """Hold every native thread pool (BLAS and OpenMP) to one thread: scikit-learn's k-means
    initialisation, whose OpenMP threads fight JAX's pool for the cores. Same as
    ``threadpool_limits(1)`` without its ~1 ms library scan per call (a fifth of a fit of
    2,000 points)."""
    with _native_thread_pools().limit(limits=1):
        yield


def memory_map_count():
    """Memory mappings of this process (lines of /proc/self/maps; 0 where there is none)."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps)
    except OSError:
        return 0


def release_compiled_code(budget=None):
    """jax.clear_caches() when the process holds more than ``budget`` memory mappings
    (default tuning.MEMORY_MAPS_BUDGET): fitting many differently shaped problems in one
    process adds ~190 mappings per new shape, and at the kernel's limit (vm.max_map_count,
    65,530 by default) LLVM cannot map the next program and the process dies (SIGSEGV, no
    Python exception). Returns whether it cleared. Programs already compiled are then
    compiled again, or read back from the persistent cache, on their next use."""
    from em_reference import tuning

    limit = tuning.MEMORY_MAPS_BUDGET if budget is None else budget
    if memory_map_count() <= limit:
        return False
    jax.clear_caches()
    return True
