"""A run that is interrupted, killed or hits a failing cell loses no finished cell, and the
rerun computes only the rest and ends with the table an uninterrupted run gives."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from experiments.cli import main
from experiments.config import load_config
from experiments.execute import run_cell
from experiments.methods import METHODS, register_method
from experiments.runner import run_grid
from experiments.store import ResultStore

GRID = """
[[grid]]
datasets = [{name = "generated", n = 120, d = 2, k = 2}]
n_components = [1, 2, 3]
methods = ["em", "sklearn_em"]
"""
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The grid's cells and the table of one uninterrupted run."""
    d = tmp_path_factory.mktemp("reference")
    (d / "grid.toml").write_text(GRID)
    cells = load_config(d / "grid.toml").cells
    run_grid(cells, d / "out", progress=False)
    return d / "grid.toml", cells, ResultStore(d / "out").read_table()


class Counting:
    """run_cell that counts its calls and raises ``interrupt`` on call number ``stop_at``."""

    def __init__(self, stop_at=None, interrupt=KeyboardInterrupt):
        self.calls, self.stop_at, self.interrupt = [], stop_at, interrupt

    def __call__(self, cell):
        if self.stop_at is not None and len(self.calls) + 1 == self.stop_at:
            raise self.interrupt()
        self.calls.append(cell.key)
        return run_cell(cell)


def test_interrupt_keeps_finished_cells_and_rerun_does_only_the_rest(reference, tmp_path,
                                                                       comparable):
    _, cells, expected = reference
    out = tmp_path / "out"
    first = Counting(stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_grid(cells, out, progress=False, cell_fn=first)
    store = ResultStore(out)
    assert sorted(store.status()) == sorted(first.calls) and len(first.calls) == 2
    assert len(store.read_table()) == 2  # the table was rewritten after each cell
    second = Counting()
    summary = run_grid(cells, out, progress=False, cell_fn=second)
    assert summary.skipped == 2 and summary.done == len(cells) - 2
    assert set(second.calls).isdisjoint(first.calls)
    pd.testing.assert_frame_equal(comparable(store.read_table()), comparable(expected))


def test_killed_run_resumes(reference, tmp_path, comparable):
    grid, cells, expected = reference
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "experiments", "run", "--config", str(grid),
                             "--out", str(out), "--no-progress", "--jobs", "1"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while len(list(out.glob("cells/*/row.json"))) < 2 and proc.poll() is None:
            assert time.time() < deadline, "the run never finished two cells"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    store = ResultStore(out)
    before = {k: store.read_row(k) for k in store.status()}
    assert 2 <= len(before) < len(cells) or proc.returncode == 0
    for path in out.glob("cells/*/*"):  # whatever the kill interrupted, no file is half-written
        if path.name == "row.json":
            assert store.read_row(path.parent.name)["key"] == path.parent.name
    calls = Counting()
    run_grid(cells, out, progress=False, cell_fn=calls)
    assert not list(out.rglob("*.tmp"))  # temporaries of the killed run were cleared
    assert len(calls.calls) == len(cells) - len(before)
    assert all(store.read_row(k) == row for k, row in before.items())  # finished rows kept
    pd.testing.assert_frame_equal(comparable(store.read_table()), comparable(expected))


def test_failed_cell_is_recorded_and_retried(write_config, tmp_path):
    state = {"fail": True}

    @register_method("unit_test_flaky", models=("gaussian_mixture",))
    def flaky(problem):
        if state["fail"]:
            raise FloatingPointError("synthetic failure for the test")
        from experiments.methods.em_methods import fit_em

        return fit_em(problem)

    try:
        cfg = write_config("""
            [[grid]]
            datasets = [{name = "generated", n = 80, d = 1, k = 2}]
            n_components = [2]
            methods = ["em", "unit_test_flaky"]
            """)
        out = tmp_path / "out"
        args = ["run", "--config", str(cfg), "--out", str(out), "--no-progress"]
        assert main(args) == 0  # recorded, and a report can still follow
        state["fail"] = True
        assert main(args + ["--strict"]) == 1
        table = ResultStore(out).read_table().set_index("method")
        assert table.loc["unit_test_flaky", "status"] == "failed"
        assert "FloatingPointError: synthetic failure" in table.loc["unit_test_flaky", "error"]
        assert table.loc["em", "status"] == "ok"
        key = table.loc["unit_test_flaky", "key"]
        assert "Traceback" in (out / "cells" / key / "error.txt").read_text()
        state["fail"] = False
        assert main(["run", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
        table = ResultStore(out).read_table().set_index("method")
        assert (table["status"] == "ok").all()
        assert table.loc["unit_test_flaky", "log_likelihood_train"] == pytest.approx(
            table.loc["em", "log_likelihood_train"], rel=1e-12)
    finally:
        METHODS.pop("unit_test_flaky", None)


def test_local_processes_give_the_same_table(reference, tmp_path, comparable):
    grid, cells, expected = reference
    out = tmp_path / "out"
    assert main(["run", "--config", str(grid), "--out", str(out), "--jobs", "2",
                 "--no-progress"]) == 0
    pd.testing.assert_frame_equal(comparable(ResultStore(out).read_table()),
                                  comparable(expected))


def die(cell):
    """Kill the worker process that runs ``cell`` (as the OOM killer would)."""
    os._exit(3)


def test_worker_process_death_is_recorded_not_lost(tmp_path):
    from experiments.cells import Cell

    cells = [Cell("generated", "gaussian_mixture", 1, "em", covariance_type="full",
                  dataset_params={"n": 50})]
    summary = run_grid(cells, tmp_path / "out", jobs=2, progress=False, cell_fn=die)
    assert summary.failed == 1
    row = ResultStore(tmp_path / "out").read_table().iloc[0]
    assert row["status"] == "failed" and "worker process died" in row["error"]


def test_two_runs_cannot_write_one_folder(reference, tmp_path):
    _, cells, _ = reference
    with ResultStore(tmp_path / "out").exclusive():
        with pytest.raises(ValueError, match="another run is writing"):
            run_grid(cells[:1], tmp_path / "out", progress=False)


def test_a_seeds_cells_are_dispatched_after_the_lower_seeds_of_their_method():
    """Cells that differ only in seed compile the same programs: dispatched side by side, two
    workers compiled them at once. Each method's cells go out seed by seed (within a seed, by
    data shape as before); the expensive methods still go first."""
    from experiments.cells import Cell
    from experiments.runner import _order

    cells = [Cell(ds, "gaussian_mixture", k, method, covariance_type="full", seed=seed)
             for method in ("em", "nuts") for ds in ("faithful", "height") for k in (1, 2)
             for seed in (0, 1)]
    order = [(c.method, c.seed, c.dataset, c.n_components) for c in _order(cells)]
    assert [m for m, *_ in order] == ["nuts"] * 8 + ["em"] * 8
    for method in ("nuts", "em"):
        mine = [rest for m, *rest in order if m == method]
        assert mine == sorted(mine)  # seed, then dataset, then K
        assert [seed for seed, *_ in mine] == [0] * 4 + [1] * 4
