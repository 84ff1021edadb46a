"""Fault injection for the result store: a run killed at every write boundary (before and after
each atomic move into place, in a forked child that dies with os._exit, as kill -9 would
leave it), and every kind of file corrupted; the rerun must end with every finished cell
present exactly once, results.csv rebuilt from the cells, nothing finished recomputed, and a
message naming each file it set aside. The cells are fakes (no fitting): milliseconds each.
"""

import json
import os
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from experiments import store as store_module
from experiments.cells import Cell
from experiments.datasets import check_dataset_params
from experiments.execute import CellOutcome, identity_columns
from experiments.runner import run_grid
from experiments.store import ResultStore

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

PARAMS = check_dataset_params("generated", {"n": 50})  # as config.py fills them
CELLS = [Cell("generated", "gaussian_mixture", 2, method, seed=seed, covariance_type="full",
              dataset_params=PARAMS)
         for method in ("em", "map") for seed in (0, 1)]
CELLS.append(Cell("generated", "gaussian_mixture", 3, "em", covariance_type="full",
                  dataset_params=PARAMS))  # fails: an error.txt
CONFIG = 'title = "fault injection"\n'


class FakeIdata:
    """Stands in for ArviZ InferenceData: writes a small file like to_netcdf does."""

    def to_netcdf(self, path, engine=None):
        with open(path, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n" + bytes(range(200)))


def fake_cell(cell):
    row = identity_columns(cell)
    if cell.n_components == 3:
        row.update(status="failed", error="FloatingPointError: synthetic")
        return CellOutcome(row, {}, None, "Traceback: synthetic\n")
    means = np.arange(2.0)[:, None] + cell.seed + (cell.method == "map") * 0.25
    row.update(status="ok", error="", log_likelihood_train=-1.0 - cell.seed,
               align_param="means", align_log_scale=False, aligned_to="init")
    arrays = {"trace": np.arange(3.0), "param/means": means, "aligned/means": means,
              "compare/means": means, "compare/weights": np.full(2, 0.5)}
    return CellOutcome(row, arrays, FakeIdata() if cell.method == "map" else None)


class Recording:
    def __init__(self):
        self.calls = []

    def __call__(self, cell):
        self.calls.append(cell.key)
        return fake_cell(cell)


def count_writes(tmp_path):
    seen = []
    original = store_module._finish_temporary

    def spy(tmp, path):
        seen.append(os.path.basename(path))
        return original(tmp, path)

    store_module._finish_temporary = spy
    try:
        run_grid(CELLS, tmp_path / "count", progress=False, cell_fn=fake_cell,
                 config_text=CONFIG)
    finally:
        store_module._finish_temporary = original
    return seen


def killed_run(out, boundary, before):
    """Run the grid in a forked child that dies (os._exit) at write number ``boundary``,
    before or after the file is moved into place."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            count = [0]
            original = store_module._finish_temporary

            def dying(tmp, path):
                count[0] += 1
                if count[0] == boundary and before:
                    os._exit(99)
                original(tmp, path)
                if count[0] == boundary:
                    os._exit(99)

            store_module._finish_temporary = dying
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115
            run_grid(CELLS, out, progress=False, cell_fn=fake_cell, config_text=CONFIG)
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(98)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def finished_before(out):
    """Keys of the cells whose row.json is present and readable after the kill."""
    done = {}
    for path in (out / "cells").glob("*/row.json"):
        try:
            done[path.parent.name] = json.loads(path.read_text())["status"]
        except (ValueError, KeyError):
            pass
    return done


def assert_healed(out, recorded_before, second):
    store = ResultStore(out)
    table = store.read_table()
    assert sorted(table["key"]) == sorted(c.key for c in CELLS)  # each cell exactly once
    csv = pd.read_csv(out / "results.csv")
    assert sorted(csv["key"]) == sorted(table["key"])  # results.csv rebuilt from the cells
    ok_before = {k for k, s in recorded_before.items() if s == "ok"}
    assert ok_before.isdisjoint(second.calls)  # nothing finished is recomputed
    assert not list(out.rglob("*.tmp"))
    assert (out / "config.toml").read_text() == CONFIG
    failed = table[table["status"] == "failed"]
    assert len(failed) == 1 and (out / "cells" / failed["key"].iloc[0] / "error.txt").is_file()
    em, mp = (table[(table["method"] == m) & (table["seed"] == 0)].iloc[0] for m in ("em", "map"))
    assert mp["rmse_means_vs_em"] == pytest.approx(0.25)  # the comparison, from the store
    assert em["rmse_means_vs_em"] == 0.0


def test_kill_at_every_write_boundary_then_rerun(tmp_path):
    writes = count_writes(tmp_path)
    # per ok cell: fit.npz, [posterior.nc], row.json, results.csv, run record; plus config,
    # the table rebuilt at the start, the run record's start and end
    assert writes.count("row.json") == len(CELLS) and "posterior.nc" in writes
    with warnings.catch_warnings():
        # fork with threads: Python (3.12+) and JAX warn; the child runs no JAX, only the store
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        for boundary in range(1, len(writes) + 1):
            for before in (True, False):
                out = tmp_path / f"kill-{boundary}-{before}"
                code = killed_run(out, boundary, before)
                assert code == 99, (boundary, before, code, writes[boundary - 1])
                recorded = finished_before(out)
                second = Recording()
                run_grid(CELLS, out, progress=False, cell_fn=second, retry_failed=False,
                         config_text=CONFIG)
                assert_healed(out, recorded, second)


@pytest.fixture
def finished(tmp_path):
    out = tmp_path / "out"
    run_grid(CELLS, out, progress=False, cell_fn=fake_cell, config_text=CONFIG)
    return out


def _ok_key(out, method="map"):
    table = ResultStore(out).read_table()
    return table[(table["method"] == method) & (table["status"] == "ok")]["key"].iloc[0]


@pytest.mark.parametrize("damage", ["truncated", "empty", "no status", "not an object",
                                    "wrong key"])
def test_damaged_row_json_is_set_aside_and_recomputed(finished, damage, capsys):
    key = _ok_key(finished)
    path = finished / "cells" / key / "row.json"
    row = json.loads(path.read_text())
    text = {"truncated": path.read_text()[:40], "empty": "",
            "no status": json.dumps({k: v for k, v in row.items() if k != "status"}),
            "not an object": "[1, 2]",
            "wrong key": json.dumps({**row, "key": "0" * 16})}[damage]
    path.write_text(text)
    second = Recording()
    run_grid(CELLS, finished, progress=False, cell_fn=second, retry_failed=False)
    err = capsys.readouterr().err
    assert str(path) in err and "set aside" in err
    assert second.calls == [key]
    assert len(list(path.parent.glob("row.json.corrupt-*"))) == 1
    assert sorted(ResultStore(finished).read_table()["key"]) == sorted(c.key for c in CELLS)


@pytest.mark.parametrize("artefact", ["fit.npz", "posterior.nc"])
def test_damaged_artefact_is_set_aside_and_recomputed(finished, artefact, capsys):
    key = _ok_key(finished)
    path = finished / "cells" / key / artefact
    path.write_bytes(path.read_bytes()[:30])
    # a reader (the report of a running grid) skips it and says so, changing nothing
    assert key not in set(ResultStore(finished).read_table()["key"])
    assert str(path.parent / "row.json") in capsys.readouterr().err and path.is_file()
    second = Recording()
    run_grid(CELLS, finished, progress=False, cell_fn=second, retry_failed=False)
    err = capsys.readouterr().err
    assert second.calls == [key]
    assert str(path) in err and str(path.parent / "row.json") in err
    assert len(list(path.parent.glob(f"{artefact}.corrupt-*"))) == 1
    assert ResultStore(finished).read_table()["key"].is_unique


def test_results_csv_config_and_run_records_are_rebuilt(finished, capsys):
    (finished / "results.csv").write_text("key,dataset\nabc")  # truncated mid-row
    (finished / "config.toml").write_bytes(b"\xff\xfe")
    record = next((finished / "runs").glob("*.json"))
    record.write_text("{")
    second = Recording()
    run_grid(CELLS, finished, progress=False, cell_fn=second, retry_failed=False,
             config_text=CONFIG)
    assert second.calls == []
    assert str(record) in capsys.readouterr().err  # named, skipped
    csv = pd.read_csv(finished / "results.csv")
    assert sorted(csv["key"]) == sorted(c.key for c in CELLS)
    assert (finished / "config.toml").read_text() == CONFIG


def test_retried_cell_loses_its_stale_error(finished):
    failing = next(c for c in CELLS if c.n_components == 3)
    d = finished / "cells" / failing.key
    assert (d / "error.txt").is_file()

    def now_ok(cell):
        out = fake_cell(cell)
        if cell.n_components == 3:
            row = identity_columns(cell)
            row.update(status="ok", error="")
            return CellOutcome(row, {"trace": np.zeros(1)})
        return out

    run_grid(CELLS, finished, progress=False, cell_fn=now_ok)
    assert not (d / "error.txt").exists()
    assert ResultStore(finished).read_row(failing.key)["status"] == "ok"


def test_a_recomputed_configuration_supersedes_its_stale_cell(finished):
    from dataclasses import replace

    new = [replace(c, code_version="new-code") for c in CELLS]
    assert {c.config_key for c in new} == {c.config_key for c in CELLS}
    assert not {c.key for c in new} & {c.key for c in CELLS}
    second = Recording()
    run_grid(new, finished, progress=False, cell_fn=second)
    assert sorted(second.calls) == sorted(c.key for c in new)  # stale rows not resumed
    table = ResultStore(finished).read_table()
    assert sorted(table["key"]) == sorted(c.key for c in new)  # one row per configuration
    assert sorted(p.name for p in (finished / "superseded").iterdir()) == \
        sorted(c.key for c in CELLS)


def test_rows_from_before_versioned_keys_are_superseded_by_a_rerun(finished):
    """A folder written before keys carried code and data versions: its rows have no
    config_key; the rerun (new keys) recomputes them and moves the old rows aside."""
    store = ResultStore(finished)
    legacy = {}
    for key in list(store.status()):
        row = store.read_row(key)
        old_key = "legacy" + key[6:]
        row = {k: v for k, v in row.items()
               if k not in ("config_key", "code_version", "data_hash", "finished_at")}
        row["key"] = old_key
        d = finished / "cells" / key
        (d / "row.json").write_text(json.dumps(row))
        d.rename(d.with_name(old_key))
        legacy[old_key] = key
    assert sorted(store.read_table()["key"]) == sorted(legacy)
    second = Recording()
    run_grid(CELLS, finished, progress=False, cell_fn=second)
    assert sorted(second.calls) == sorted(c.key for c in CELLS)
    assert sorted(store.read_table()["key"]) == sorted(c.key for c in CELLS)
    assert sorted(p.name for p in (finished / "superseded").iterdir()) == sorted(legacy)
