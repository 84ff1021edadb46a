"""The result store: one tidy row per cell, written atomically as each cell finishes.

Layout of an output folder::

    results.csv              every row (rewritten atomically after each cell)
    config.toml              the grid that produced it
    cells/<key>/row.json     the cell's row; written last, so its presence means "finished"
    cells/<key>/fit.npz      arrays: objective trace, raw and aligned parameters, aligned draws
    cells/<key>/posterior.nc ArviZ InferenceData (VI, NUTS)
    cells/<key>/error.txt    traceback of a failed cell

Every file is written to a temporary name in the same folder and moved into place with
os.replace, so a crash or Ctrl-C leaves either the old file or the new one, never half of one.
``key`` is the hash of the cell's configuration (cells.Cell.key).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

ROW_ORDER = ["dataset", "model", "n_components", "covariance_type", "method", "seed"]


def atomic_write_bytes(path, data: bytes):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode())


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


class ResultStore:
    """Read and write one output folder."""

    def __init__(self, root):
        self.root = Path(root)
        self.cells_dir = self.root / "cells"

    @property
    def table_path(self) -> Path:
        return self.root / "results.csv"

    def cell_dir(self, key) -> Path:
        return self.cells_dir / key

    def read_row(self, key) -> dict | None:
        path = self.cell_dir(key) / "row.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def status(self) -> dict[str, str]:
        """{key: "ok" | "failed"} of every cell with a row."""
        out = {}
        if self.cells_dir.is_dir():
            for path in self.cells_dir.glob("*/row.json"):
                out[path.parent.name] = json.loads(path.read_text())["status"]
        return out

    def write(self, row: dict, arrays: dict | None = None, inference_data=None,
              error_text: str | None = None):
        """Store one finished cell: artefacts first, then row.json, then the table."""
        d = self.cell_dir(row["key"])
        d.mkdir(parents=True, exist_ok=True)
        if arrays:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            atomic_write_bytes(d / "fit.npz", buf.getvalue())
        if inference_data is not None:
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".posterior.nc.", suffix=".tmp")
            os.close(fd)
            try:
                inference_data.to_netcdf(tmp, engine="h5netcdf")
                os.replace(tmp, d / "posterior.nc")
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        if error_text:
            atomic_write_text(d / "error.txt", error_text)
        atomic_write_text(d / "row.json", json.dumps(row, default=_json_default, indent=1))
        self.write_table()

    @contextmanager
    def exclusive(self):
        """Hold an advisory lock on the folder for a run: a second run into the same folder
        stops with ValueError instead of interleaving writes. Released when the process ends,
        however it ends."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        with open(self.root / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ValueError(f"another run is writing to {str(self.root)!r}; wait for it "
                                 "or choose another --out") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files a killed run left behind (never a finished file)."""
        stale = list(self.root.glob(".*.tmp")) + list(self.cells_dir.glob("*/.*.tmp"))
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def rows(self) -> pd.DataFrame:
        """All rows as a DataFrame in a stable order (not the order cells finished in)."""
        rows = []
        if self.cells_dir.is_dir():
            rows = [json.loads(p.read_text()) for p in sorted(self.cells_dir.glob("*/row.json"))]
        if not rows:
            return pd.DataFrame()
        df = pd.DataFrame(rows)
        return df.sort_values(ROW_ORDER + ["key"], kind="stable").reset_index(drop=True)

    def write_table(self):
        df = self.rows()
        atomic_write_text(self.table_path, df.to_csv(index=False))

    def read_table(self) -> pd.DataFrame:
        if not self.table_path.is_file():
            raise ValueError(f"{str(self.root)!r} holds no results.csv: run a grid into it first")
        text_cols = ("covariance_type", "error", "objective_name")
        df = pd.read_csv(self.table_path, dtype={c: object for c in text_cols})
        for c in text_cols:
            if c in df:
                df[c] = df[c].fillna("")
        return df

    def load_arrays(self, key) -> dict:
        path = self.cell_dir(key) / "fit.npz"
        if not path.is_file():
            return {}
        with np.load(path) as f:
            return {k: f[k] for k in f.files}

    def load_inference_data(self, key):
        path = self.cell_dir(key) / "posterior.nc"
        if not path.is_file():
            return None
        import arviz as az

        return az.from_netcdf(path)
