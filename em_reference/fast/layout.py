"""How the fast kernel lays the data out on the device: centred, padded to whole chunks of
rows (zero-weight padding), reshaped to (n_chunks, C, D), optionally sharded over devices, and
whether the features T(X) are kept for the whole fit."""

from __future__ import annotations

import math
import numbers
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from em_reference import tuning


def n_devices(devices):
    return 1 if devices is None else (devices if isinstance(devices, int) else len(devices))


def chunk_rows(n_samples, row_width, chunk_size, devices):
    """Rows per chunk. chunk_size=None picks it so that a chunk's temporaries (row_width
    values per row) hold about tuning.CHUNK_TARGET_VALUES values, chunks as even as possible
    and each a multiple of tuning.CHUNK_ROW_MULTIPLE rows times the device count."""
    n_dev = n_devices(devices)
    if chunk_size is not None:
        if chunk_size % n_dev:
            raise ValueError(f"chunk_size={chunk_size} must be a multiple of the {n_dev} devices")
        return chunk_size
    target = max(tuning.CHUNK_MIN_ROWS, tuning.CHUNK_TARGET_VALUES // row_width)
    n_chunks = math.ceil(n_samples / target)
    step = tuning.CHUNK_ROW_MULTIPLE * n_dev
    return math.ceil(math.ceil(n_samples / n_chunks) / step) * step


def bucket_rows(n_samples, row_bucket):
    """The row count data of n_samples rows are laid out at: n_samples itself for
    row_bucket=None, else the smallest of row_bucket * 2**j (j >= 0) holding them."""
    if row_bucket is None:
        return n_samples
    if isinstance(row_bucket, bool) or not isinstance(row_bucket, numbers.Integral) \
            or row_bucket < 1:
        raise ValueError(f"row_bucket must be None or an int >= 1, got {row_bucket!r}")
    rows = int(row_bucket)
    while rows < n_samples:
        rows *= 2
    return rows


def pad_rows(a, n_rows):
    """a (N, ...) followed by zero rows up to n_rows rows (a numpy array)."""
    a = np.asarray(a)
    if len(a) == n_rows:
        return a
    return np.concatenate([a, np.zeros((n_rows - len(a),) + a.shape[1:], a.dtype)])


def keep_features(n_chunks, chunk, n_features_out, dtype, chunk_size):
    """Whether T(X) is computed once and kept (no explicit chunk_size, and it fits
    tuning.FEATURE_CACHE_BYTES) rather than rebuilt chunk by chunk in every E-step."""
    return chunk_size is None and (
        n_chunks * chunk * n_features_out * jnp.dtype(dtype).itemsize
        <= tuning.FEATURE_CACHE_BYTES)


@partial(jax.jit, donate_argnums=0)
def _write_chunks(X_chunks, block, first):
    """X_chunks with chunks first, first + 1, ... replaced by block (in place: donated)."""
    return jax.lax.dynamic_update_slice(X_chunks, block, (first, 0, 0))


def lay_out(X, w, center, chunk, devices, dtype, n_rows=None):
    """X (N, D) minus center, padded with zero-weight rows to whole chunks of ``chunk`` rows
    holding at least n_rows rows (default N), as device arrays (n_chunks, C, D) and weights
    (n_chunks, C), without a host copy of X: the device array is filled block by block in
    place (streaming EM's peak memory is then X plus its one device copy). devices: None, an
    int or a list of devices to shard rows over."""
    n, d = X.shape
    n_chunks = math.ceil(max(n, n_rows or 0) / chunk)
    center = np.zeros(d) if center is None else center
    per_copy = min(n_chunks, max(1, tuning.HOST_COPY_VALUES // (chunk * d)))
    Xd = jnp.zeros((n_chunks, chunk, d), dtype)
    for first in range(0, n_chunks, per_copy):
        # the last block may be shorter (a second compiled shape, at most)
        block = np.zeros((min(per_copy, n_chunks - first), chunk, d), dtype)
        rows = X[first * chunk: (first + per_copy) * chunk]
        np.subtract(rows, center, out=block.reshape(-1, d)[: len(rows)])
        Xd = _write_chunks(Xd, block, first)
    w_buf = np.zeros(n_chunks * chunk, dtype=dtype)
    w_buf[:n] = w
    wd = jnp.asarray(w_buf.reshape(n_chunks, chunk))
    if devices is not None:
        devs = jax.devices()[:devices] if isinstance(devices, int) else list(devices)
        if len(devs) < n_devices(devices):
            raise ValueError(f"devices={devices} asks for more devices than the "
                             f"{len(jax.devices())} available")
        mesh = Mesh(np.array(devs), ("data",))
        # chunks are split along samples inside each chunk, so every device scans its part
        spec = PartitionSpec(None, "data")
        Xd = jax.device_put(Xd, NamedSharding(mesh, spec))
        wd = jax.device_put(wd, NamedSharding(mesh, spec))
    return Xd, wd


def chunks_like(rows, X_chunks):
    """(N, K) host rows padded with zeros and reshaped to X_chunks' (n_chunks, C, K) layout."""
    n_chunks, c = X_chunks.shape[:2]
    padded = np.zeros((n_chunks * c, rows.shape[1]), dtype=X_chunks.dtype)
    padded[: len(rows)] = rows
    return jax.device_put(padded.reshape(n_chunks, c, -1), X_chunks.sharding)
