"""The persistent compilation cache's entries appear whole or not at all (em_reference.config:
JAX writes them in place, and a half-written entry read by another process crashed it)."""

import os
import subprocess
import sys

import pytest
from jax._src import compilation_cache

from em_reference import config


def test_the_cache_class_in_use_writes_atomically():
    assert config._atomic_cache_writes()
    assert getattr(compilation_cache.LRUCache, "writes_atomically", False)


def test_an_interrupted_write_leaves_no_entry_and_no_temporary(tmp_path, monkeypatch):
    config._atomic_cache_writes()
    cache = compilation_cache.LRUCache(str(tmp_path), max_size=-1)
    real_fdopen = os.fdopen

    class Dies:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise KeyboardInterrupt  # the process is stopped half-way through the bytes

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Dies(real_fdopen(fd, mode)))
    with pytest.raises(KeyboardInterrupt):
        cache.put("abc", b"x" * 1000)
    assert cache.get("abc") is None
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    cache.put("abc", b"y" * 1000)
    assert cache.get("abc") == b"y" * 1000
    cache.put("abc", b"z")  # an existing entry is kept, as JAX's own put does
    assert cache.get("abc") == b"y" * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abc-cache"]


def test_a_fit_fills_the_cache_with_whole_entries_only(tmp_path):
    code = ("import numpy as np; from em_reference import GaussianMixtureEM; "
            "GaussianMixtureEM(2, max_iter=5, tol=0.0, covariance_type='spherical',"
            " random_state=0).fit(np.random.default_rng(0).normal(size=(40, 1)))")
    env = {**os.environ, "MIXBENCH_JAX_CACHE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = [p.name for p in tmp_path.iterdir()]
    assert any(n.endswith("-cache") for n in names)
    assert not any(n.endswith(".tmp") for n in names)
