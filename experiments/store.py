"""The result store: one tidy row per cell, written atomically as each cell finishes.

Layout of an output folder::

    cells/<key>/row.json     the cell's row; written last, so its presence means "finished";
                             lists the cell's artefacts with their SHA-256
    cells/<key>/fit.npz      arrays: objective trace, raw, aligned and comparable parameters,
                             aligned draws
    cells/<key>/posterior.nc ArviZ InferenceData (VI, NUTS)
    cells/<key>/error.txt    traceback of a failed cell (removed when a retry succeeds)
    results.csv              derived: rebuilt from the cells (never read back), with the
                             comparisons across cells (comparisons.py)
    config.toml              the grid of the latest run (written once the run holds the lock)
    runs/<start>-<pid>.json  one record per run: start, last update, end, cells done/failed
                             (the report sums them: the grid's wall time across resumes)
    superseded/<key>/        cells made by an older code or data version of a configuration
                             that has since been recomputed (set aside, never deleted)

Every file is written to a temporary name in the same folder and moved into place with
os.replace (with the permissions the umask gives, as any file the user writes), so a crash or
a kill leaves either the old file or the new one, never half of one. A file found damaged
(unreadable row.json, a row without a status, an artefact whose hash does not match) is set
aside as ``<name>.corrupt-<time>`` with a message naming it, and its cell is recomputed by the
next run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROW_ORDER = ["dataset", "model", "n_components", "covariance_type", "method", "seed"]
STATUSES = ("ok", "failed")
ARTEFACTS = ("fit.npz", "posterior.nc")
TABLE_EVERY = 5.0  # seconds: during a run results.csv is rebuilt at most this often


def _file_mode() -> int:
    """0o666 minus the process umask: what open() would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _finish_temporary(tmp, path):
    os.chmod(tmp, _file_mode())  # mkstemp creates 0600; the user's umask decides
    os.replace(tmp, path)


def atomic_write_bytes(path, data: bytes):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _finish_temporary(tmp, path)
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def warn(message: str):
    print(f"warning: {message}", file=sys.stderr)


def _config_key_of(row) -> str:
    """The row's configuration hash; rows written before result keys carried versions have
    none, and get the one their configuration has now (so a rerun supersedes them)."""
    if row.get("config_key"):
        return row["config_key"]
    from .cells import Cell
    from .datasets import check_dataset_params

    try:
        params = json.loads(row["dataset_params"])
        try:
            params = check_dataset_params(row["dataset"], params)
        except ValueError:
            pass
        prior = json.loads(row["prior"])
        k = row["n_components"]
        return Cell(row["dataset"], row["model"], None if k is None else int(k), row["method"],
                    int(row["seed"]), row["covariance_type"] or "", params,
                    json.loads(row["method_options"]), "default" if prior == {} else prior,
                    row["held_out_fraction"],
                    json.loads(row.get("model_options") or "{}")).config_key
    except (KeyError, TypeError, ValueError):
        return row["key"]


class ResultStore:
    """Read and write one output folder."""

    def __init__(self, root):
        self.root = Path(root)
        self.cells_dir = self.root / "cells"
        # key -> row of every valid cell, kept in memory by the writer (the run holding the
        # lock, after heal()); readers rescan the folder at every call
        self._rows: dict[str, dict] | None = None
        self._compare: dict[str, dict] = {}        # key -> comparable arrays (immutable)
        self._vs_em: dict = {}                     # (key, reference key) -> comparisons
        self._table_written = 0.0                  # when results.csv was last rewritten

    @property
    def table_path(self) -> Path:
        return self.root / "results.csv"

    def cell_dir(self, key) -> Path:
        return self.cells_dir / key

    # ------------------------------------------------------------------ reading and healing
    def _check_row(self, path: Path):
        """(row, None, None) for a valid row.json, else (None, reason, damaged artefact or
        None)."""
        try:
            row = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return None, f"unreadable ({type(exc).__name__}: {exc})", None
        if not isinstance(row, dict):
            return None, "not a JSON object", None
        if row.get("key") != path.parent.name:
            return None, f"its key {row.get('key')!r} is not its folder's name", None
        if row.get("status") not in STATUSES:
            return None, f"no valid status (got {row.get('status')!r})", None
        artefacts = row.get("artefacts") or {}
        if not isinstance(artefacts, dict):
            return None, "its list of artefacts is not a table", None
        for name, digest in artefacts.items():
            artefact = path.parent / str(name)
            if not artefact.is_file():
                return None, f"its artefact {name} is missing", None
            if _sha256(artefact.read_bytes()) != digest:
                return None, f"its artefact {name} does not match its recorded SHA-256", \
                    artefact
        return row, None, None

    def set_aside(self, path: Path, reason: str) -> Path:
        """Rename a damaged file to ``<name>.corrupt-<time>`` and say so."""
        target = path.with_name(f"{path.name}.corrupt-{_stamp()}")
        os.replace(path, target)
        warn(f"set aside {path} as {target.name}: {reason}; its cell will be recomputed")
        return target

    def _scan(self, heal: bool) -> dict[str, dict]:
        rows = {}
        if not self.cells_dir.is_dir():
            return rows
        for path in sorted(self.cells_dir.glob("*/row.json")):
            row, reason, artefact = self._check_row(path)
            if row is not None:
                rows[row["key"]] = row
                continue
            if heal:
                if artefact is not None:
                    self.set_aside(artefact, f"damaged (the row of {path.parent.name} records "
                                             "another SHA-256)")
                self.set_aside(path, reason)
            else:
                warn(f"skipped {path}: {reason} (the next run sets it aside and recomputes it)")
        return self._drop_superseded(rows, heal)

    def _drop_superseded(self, rows, heal):
        """One row per configuration: a configuration recomputed under a new code or data
        version keeps its latest row; the older cells go to superseded/."""
        by_config: dict[str, list[dict]] = {}
        for row in rows.values():
            by_config.setdefault(_config_key_of(row), []).append(row)
        for group in by_config.values():
            if len(group) < 2:
                continue
            group.sort(key=lambda r: r.get("finished_at", ""))
            for old in group[:-1]:
                rows.pop(old["key"])
                if heal:
                    self._supersede(old["key"])
        return rows

    def _supersede(self, key):
        src = self.cell_dir(key)
        if src.is_dir():
            dst = self.root / "superseded" / key
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists():
                shutil.rmtree(dst)
            os.replace(src, dst)

    def heal(self) -> dict[str, dict]:
        """Check every cell (only while holding the lock): set damaged files aside, move
        superseded cells out, rebuild results.csv. Returns {key: row} of the valid cells."""
        self._rows = self._scan(heal=True)
        self.write_table()
        return self._rows

    def valid_rows(self) -> dict[str, dict]:
        return self._scan(heal=False) if self._rows is None else self._rows

    def read_row(self, key) -> dict | None:
        path = self.cell_dir(key) / "row.json"
        if not path.is_file():
            return None
        return self._check_row(path)[0]

    def status(self) -> dict[str, str]:
        """{key: "ok" | "failed"} of every valid cell."""
        return {k: r["status"] for k, r in self.valid_rows().items()}

    # ------------------------------------------------------------------ writing
    def write(self, row: dict, arrays: dict | None = None, inference_data=None,
              error_text: str | None = None):
        """Store one finished cell: artefacts first, then row.json (the commit point), then
        the derived table."""
        key = row["key"]
        d = self.cell_dir(key)
        d.mkdir(parents=True, exist_ok=True)
        artefacts = {}
        if arrays:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            data = buf.getvalue()
            atomic_write_bytes(d / "fit.npz", data)
            artefacts["fit.npz"] = _sha256(data)
        if inference_data is not None:
            artefacts["posterior.nc"] = self._write_netcdf(d, inference_data)
        for name in ARTEFACTS:  # left by an earlier attempt of this cell
            if name not in artefacts:
                (d / name).unlink(missing_ok=True)
        if error_text:
            atomic_write_text(d / "error.txt", error_text)
        else:
            (d / "error.txt").unlink(missing_ok=True)
        row = {**row, "artefacts": artefacts,
               "finished_at": datetime.now(UTC).isoformat(timespec="microseconds")}
        atomic_write_text(d / "row.json", json.dumps(row, default=_json_default, indent=1))
        self._compare.pop(key, None)
        if self._rows is None:
            self._rows = self._scan(heal=True)
        rows = self._rows
        rows[key] = json.loads(json.dumps(row, default=_json_default))
        self._rows = self._drop_superseded(rows, heal=True)
        self.write_table(at_most_every=TABLE_EVERY)

    def _write_netcdf(self, d, inference_data) -> str:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".posterior.nc.", suffix=".tmp")
        os.close(fd)
        try:
            inference_data.to_netcdf(tmp, engine="h5netcdf")
            digest = _sha256(Path(tmp).read_bytes())
            _finish_temporary(tmp, d / "posterior.nc")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return digest

    @contextmanager
    def exclusive(self):
        """Hold an advisory lock on the folder for a run: a second run into the same folder
        stops with ValueError instead of interleaving writes. Released when the process ends,
        however it ends."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / ".lock", "w")  # noqa: SIM115  (held for the run)
        except (FileExistsError, NotADirectoryError):
            raise ValueError(f"--out {str(self.root)!r} is not a folder (a file is in the "
                             "way)") from None
        except OSError as exc:
            raise ValueError(f"cannot write to --out {str(self.root)!r}: {exc.strerror}") \
                from None
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            with handle:
                yield
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ValueError(f"another run is writing to {str(self.root)!r}; wait for it "
                                 "or choose another --out") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def is_locked(self) -> bool:
        """Whether a run holds the folder's lock now."""
        try:
            import fcntl
        except ImportError:
            return False
        path = self.root / ".lock"
        if not path.is_file():
            return False
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files a killed run left behind (never a finished file)."""
        stale = (list(self.root.glob(".*.tmp")) + list(self.cells_dir.glob("*/.*.tmp"))
                 + list((self.root / "runs").glob(".*.tmp")))
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    # ------------------------------------------------------------------ the derived table
    def compare_arrays(self, key) -> dict:
        if key not in self._compare:
            self._compare[key] = {k.split("/", 1)[1]: v for k, v in
                                  self.load_arrays(key).items() if k.startswith("compare/")}
        return self._compare[key]

    def rows(self) -> pd.DataFrame:
        """All valid rows as a DataFrame in a stable order (not the order cells finished in),
        with the comparisons across cells."""
        from .comparisons import add_kl_gap_columns, add_reference_columns

        rows = [{k: v for k, v in r.items() if k != "artefacts"}
                for _, r in sorted(self.valid_rows().items())]
        if not rows:
            return pd.DataFrame()
        add_reference_columns(rows, self.compare_arrays, self._vs_em)
        add_kl_gap_columns(rows)
        df = pd.DataFrame(rows)
        return df.sort_values(ROW_ORDER + ["key"], kind="stable").reset_index(drop=True)

    def write_table(self, at_most_every: float = 0.0):
        """Rebuild results.csv from the cells; with ``at_most_every`` (seconds) skip it if it
        was rebuilt more recently (a run rebuilds it at its start and end; it is never read
        back, so a skipped rewrite loses nothing)."""
        if at_most_every and time.monotonic() - self._table_written < at_most_every:
            return
        atomic_write_text(self.table_path, self.rows().to_csv(index=False))
        self._table_written = time.monotonic()

    def read_table(self) -> pd.DataFrame:
        """The table, derived from the cells (results.csv is only its copy for other tools)."""
        df = self.rows()
        if df.empty:
            raise ValueError(f"{str(self.root)!r} holds no finished cells: run a grid into it "
                             "first")
        return df

    def load_arrays(self, key) -> dict:
        path = self.cell_dir(key) / "fit.npz"
        if not path.is_file():
            return {}
        try:
            with np.load(path) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            warn(f"cannot read {path} ({exc}); the next run sets it aside and recomputes it")
            return {}

    def load_inference_data(self, key):
        path = self.cell_dir(key) / "posterior.nc"
        if not path.is_file():
            return None
        import arviz as az

        return az.from_netcdf(path)

    # ------------------------------------------------------------------ run records
    def start_run(self, **info) -> RunRecord:
        return RunRecord(self.root / "runs" / f"{_stamp()}-{os.getpid()}.json", info)

    def run_records(self) -> list[dict]:
        """Every readable run record, oldest first (damaged ones are skipped with a warning)."""
        out = []
        for path in sorted((self.root / "runs").glob("*.json")):
            try:
                record = json.loads(path.read_text())
                float(record["wall_time"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                warn(f"skipped the unreadable run record {path} ({exc})")
                continue
            out.append(record)
        return out


class RunRecord:
    """One run's record, rewritten (atomically) as it goes: so a killed run still counts the
    time up to its last finished cell."""

    def __init__(self, path: Path, info: dict):
        self.path = path
        self.start = time.time()
        self.data = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                     "ended": None, "outcome": "running", "wall_time": 0.0, "done": 0,
                     "failed": 0, **info}
        self._write()

    def _write(self):
        self.data["wall_time"] = round(time.time() - self.start, 3)
        atomic_write_text(self.path, json.dumps(self.data, indent=1, default=_json_default))

    def update(self, **counts):
        self.data.update(counts)
        self._write()

    def finish(self, outcome: str, **counts):
        self.data.update(counts, outcome=outcome,
                         ended=datetime.now(UTC).isoformat(timespec="seconds"))
        self._write()
