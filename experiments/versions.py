"""The code version in every result key: which code produced a fit.

``code_version(dataset, model, method)`` hashes
- the source of every module of em_reference/, models/ and experiments/ that takes part in
  producing or scoring a fit: all of them except the ones that only run, store or present
  results (``PRESENTATION`` below: editing the report or a figure keeps every result valid);
- the source file of each user module that registered the cell's dataset, model or method
  (a grid's ``imports``), so editing your own model reruns its cells;
- the versions of the numerical libraries (a jax or scikit-learn upgrade changes numbers).

Any edit to those files, even a comment, gives new keys: a rerun recomputes the cells
(it is the price of never resuming rows that a different code made).
"""

from __future__ import annotations

import hashlib
import inspect
import os
from functools import lru_cache, cache
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("em_reference", "models", "experiments")
# experiments/ files that do not change what a cell computes
PRESENTATION = ("report.py", "summary.py", "figures", "cli.py", "runner.py", "store.py",
                "config.py", "comparisons.py", "__main__.py", "configs", "data")
LIBRARIES = ("jax", "jaxlib", "numpyro", "numpy", "scipy", "scikit-learn", "arviz", "optax")


def fit_code_files() -> list[Path]:
    """The package source files hashed into every result key, sorted."""
    files = []
    for package in PACKAGES:
        base = ROOT / package
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base)
            if package == "experiments" and rel.parts[0] in PRESENTATION:
                continue
            files.append(path)
    return files


def _file_digest(path: str) -> str:
    """SHA-256 of a file, cached per (path, size, mtime): an edit is seen at once."""
    st = os.stat(path)
    return _digest(path, st.st_size, st.st_mtime_ns)


@cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _library_versions() -> str:
    out = []
    for name in LIBRARIES:
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name}=absent")
    return ";".join(out)


def base_version() -> str:
    """Hash of the library versions and of every fit-producing package file."""
    files = fit_code_files()
    stats = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _base_version(stats)


@lru_cache(maxsize=4)
def _base_version(stats) -> str:
    h = hashlib.sha256(_library_versions().encode())
    for path, size, mtime in stats:
        h.update(str(Path(path).relative_to(ROOT)).encode())
        h.update(_digest(path, size, mtime).encode())
    return h.hexdigest()


def _user_file(obj) -> str | None:
    """The source file of the module defining ``obj`` when it lies outside the packages."""
    if isinstance(obj, str):  # "module:attribute"
        module = obj.partition(":")[0]
        if module.split(".")[0] in PACKAGES:
            return None
        import importlib

        try:
            obj = importlib.import_module(module)
        except ImportError:
            return None
    try:
        path = Path(inspect.getsourcefile(obj) or inspect.getfile(obj)).resolve()
    except (TypeError, OSError):
        return None
    if any(path.is_relative_to(ROOT / p) for p in PACKAGES) or not path.is_file():
        return None
    return str(path)


def code_version(*entries) -> str:
    """16 hex digits: the package code + the user files behind ``entries`` (registry entries:
    a DatasetEntry, a ModelEntry, a MethodEntry; every callable field is looked at)."""
    files = set()
    for entry in entries:
        for name, value in vars(entry).items():
            if callable(value) or (name == "numpyro_model" and isinstance(value, str)):
                path = _user_file(value)
                if path:
                    files.add(path)
            elif isinstance(value, dict):
                files.update(p for v in value.values() if callable(v)
                             and (p := _user_file(v)))
    h = hashlib.sha256(base_version().encode())
    for path in sorted(files):
        h.update(path.encode())
        h.update(_file_digest(path).encode())
    return h.hexdigest()[:16]
