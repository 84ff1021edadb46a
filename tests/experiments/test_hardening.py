"""Hostile and careless use (issue 21 items 4-7, issue 19 item 5), each reproduced first:
values the loaders used to accept and the cells then failed on, CLI errors without a
traceback, file modes, result keys that go stale, wall time across resumes, and the local
worker pool (a dying worker, kill -9 of the parent, Ctrl-C)."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from experiments.cells import Cell
from experiments.cli import main
from experiments.config import parse_config
from experiments.execute import CellOutcome, identity_columns
from experiments.runner import run_grid
from experiments.store import ResultStore

ROOT = Path(__file__).resolve().parents[2]
EM = """
[[grid]]
datasets = [{name = "generated", n = 60, d = 1, k = 2}]
n_components = [2]
methods = ["em"]
"""


def _block(**kw):
    return {"grid": [{"datasets": [{"name": "generated", "n": 1000}], "methods": ["em"],
                      **kw}]}


@pytest.mark.parametrize("data, message", [
    ({"methods": {"em": {"max_iter": -5}}, **_block()}, r"'max_iter' must be >= 1, got -5"),
    ({"methods": {"em": {"max_iter": "ten"}}, **_block()}, "'max_iter' must be an integer"),
    ({"methods": {"map": {"learning_rate": -1}}, **_block()}, "'learning_rate' must be > 0"),
    ({"methods": {"nuts": {"chain_method": "magic"}}, **_block()}, "must be one of"),
    ({"methods": {"evidence": {"target_accept_prob": 1.0}}, **_block()},
     "'target_accept_prob' must be < 1"),
    ({"methods": {"nuts": {"dense_mass": "yes"}}, **_block()}, "must be true or false"),
    ({"methods": {"map": {"polish": 1}}, **_block()}, "must be true or false"),
    (_block(prior={"degrees_of_freedom": -3}), "degrees_of_freedom must be > 1"),
    (_block(prior={"covariance_prior": [[1.0, 2.0], [2.0, 1.0]]}),
     "covariance_prior must be symmetric positive definite"),
    (_block(prior={"mean_precision": "many"}), "'mean_precision' must be a number"),
    ({"grid": [{"datasets": [{"name": "generated", "n": -5}], "methods": ["em"]}]},
     "'n' must be >= 1, got -5"),
    ({"grid": [{"datasets": [{"name": "generated", "n": "many"}], "methods": ["em"]}]},
     "'n' must be an integer, got 'many'"),
    (_block(n_components=[5000]), "K=5000 components for 800 training points of dataset "
                                  "'generated'"),
])
def test_values_the_cells_would_fail_on_are_refused_at_load(data, message):
    with pytest.raises(ValueError, match=message):
        parse_config(data)


def test_default_dataset_parameters_spelled_out_are_the_same_cell():
    implicit = parse_config({"grid": [{"datasets": ["generated"], "methods": ["em"]}]})
    spelled = parse_config({"grid": [{"datasets": [{"name": "generated", "n": 1000, "d": 2,
                                                    "separation": 4}], "methods": ["em"]}]})
    assert [c.key for c in implicit.cells] == [c.key for c in spelled.cells]
    assert implicit.cells[0].dataset_params == {"n": 1000, "d": 2, "k": 3,
                                                "separation": 4.0, "data_seed": 0}
    prior = parse_config({"grid": [{"datasets": ["generated"], "methods": ["em"],
                                    "prior": {}}]})
    assert prior.cells[0].key == implicit.cells[0].key  # {} is the default prior


def test_cli_errors_name_the_problem_without_a_traceback(write_config, tmp_path, capsys):
    cfg = write_config(EM)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(["run", "--config", str(cfg), "--out", str(a_file), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "Traceback" not in err
    unwritable = Path("/proc/mixbench_cannot_write_here")
    if os.geteuid() != 0:
        unwritable = tmp_path / "ro" / "out"
        unwritable.parent.mkdir()
        unwritable.parent.chmod(0o500)
    assert main(["run", "--config", str(cfg), "--out", str(unwritable), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot write to --out" in err and "Traceback" not in err
    latin = tmp_path / "latin1.toml"
    latin.write_bytes('title = "Müller"\n'.encode("latin-1") + EM.encode())
    assert main(["run", "--config", str(latin), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is not UTF-8 text (byte 0xfc" in err and "Traceback" not in err
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "is not a folder of results" in capsys.readouterr().err


def test_list_names_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for text in ("data families:", "bernoulli", "binarized_mnist", "(own split)",
                 "gaussian_mixture", "poisson_mixture", "bernoulli_mixture", "vae",
                 "gmm_prior_vae", "vae_elbo", "vae_iwae"):
        assert text in out
    em = next(line for line in out.splitlines() if line.strip().startswith("em "))
    assert "[bernoulli_mixture, gaussian_mixture, poisson_mixture]" in em
    vae = next(line for line in out.splitlines() if line.strip().startswith("vae_elbo "))
    assert "[vae, gmm_prior_vae]" in vae


def test_a_run_refused_by_the_lock_changes_nothing(write_config, tmp_path):
    out = tmp_path / "out"
    first = write_config('title = "the running grid"\n' + EM, "first.toml")
    assert main(["run", "--config", str(first), "--out", str(out), "--no-progress"]) == 0
    other = write_config('title = "another grid"\n' + EM, "other.toml")
    with ResultStore(out).exclusive():  # a run is writing to out
        assert main(["run", "--config", str(other), "--out", str(out), "--no-progress"]) == 2
    assert "the running grid" in (out / "config.toml").read_text()


def test_files_are_written_as_the_umask_says(write_config, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        assert main(["run", "--config", str(write_config(EM)), "--out", str(out),
                     "--no-progress"]) == 0
        assert main(["report", str(out)]) == 0
    finally:
        os.umask(old)
    key = ResultStore(out).read_table()["key"].iloc[0]
    for rel in ("results.csv", "config.toml", "report.md", "report.html",
                f"cells/{key}/row.json", f"cells/{key}/fit.npz"):
        assert stat.S_IMODE((out / rel).stat().st_mode) == 0o644, rel
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in (out / "runs").iterdir())


def test_report_rebuilds_a_truncated_results_csv(write_config, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--config", str(write_config(EM)), "--out", str(out),
                 "--no-progress"]) == 0
    full = (out / "results.csv").read_text()
    (out / "results.csv").write_text(full[: len(full) // 2])
    assert main(["report", str(out)]) == 0
    assert (out / "results.csv").read_text() == full


def test_keys_change_when_the_code_or_the_data_change(tmp_path, monkeypatch):
    data = tmp_path / "numbers.txt"
    data.write_text("\n".join(str(v) for v in np.random.default_rng(0).normal(size=40)))
    plugin = tmp_path / "unit_test_keyed.py"
    plugin.write_text(textwrap.dedent(f"""
        import numpy as np
        from experiments import Dataset, register_dataset

        @register_dataset("unit_test_file_data", family="gaussian", description="d",
                          provenance="p")
        def file_data():
            return Dataset(np.loadtxt({str(data)!r}))
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    from experiments.datasets import DATASETS, clear_dataset_cache

    grid = {"imports": ["unit_test_keyed"],
            "grid": [{"datasets": ["unit_test_file_data"], "methods": ["em"]}]}
    try:
        first = parse_config(grid).cells[0]
        assert parse_config(grid).cells[0].key == first.key  # stable
        data.write_text(data.read_text().replace("-", "+", 1))  # one value changes
        clear_dataset_cache()
        changed_data = parse_config(grid).cells[0]
        assert changed_data.data_hash != first.data_hash
        assert changed_data.config_key == first.config_key and changed_data.key != first.key
        plugin.write_text(plugin.read_text() + "\n# an edit of the model's own module\n")
        changed_code = parse_config(grid).cells[0]
        assert changed_code.code_version != changed_data.code_version
    finally:
        DATASETS.pop("unit_test_file_data", None)
        sys.modules.pop("unit_test_keyed", None)


def slow_cell(cell):
    time.sleep(0.3)
    row = identity_columns(cell)
    row.update(status="ok", error="")
    return CellOutcome(row, {"trace": np.zeros(1)})


def test_wall_time_is_summed_over_resumed_runs(tmp_path):
    from experiments.report import _timing

    cells = [Cell("generated", "gaussian_mixture", k, "em", covariance_type="full")
             for k in (1, 2, 3, 4)]
    calls = []

    def interrupted(cell):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(cell)
        return slow_cell(cell)

    with pytest.raises(KeyboardInterrupt):
        run_grid(cells, tmp_path, progress=False, cell_fn=interrupted)
    summary = run_grid(cells, tmp_path, progress=False, cell_fn=slow_cell)
    records = ResultStore(tmp_path).run_records()
    assert [r["outcome"] for r in records] == ["interrupted", "finished"]
    assert [r["done"] for r in records] == [2, 2]
    total = sum(r["wall_time"] for r in records)
    assert total >= 4 * 0.3 and summary.total_wall_time == pytest.approx(total)
    assert summary.wall_time < total
    text = _timing(ResultStore(tmp_path))
    assert f"{total:.0f} s of wall time over 2 runs" in text and "1 of them interrupted" in text


def die_on_k3(cell):
    """Kill the worker that runs the K=3 cell (as the OOM killer would); others finish."""
    if cell.n_components == 3:
        os._exit(3)
    return slow_cell(cell)


def test_a_dying_worker_fails_only_its_own_cell(tmp_path):
    cells = [Cell("generated", "gaussian_mixture", k, "em", covariance_type="full")
             for k in (1, 2, 3, 4, 5)]
    summary = run_grid(cells, tmp_path, jobs=2, progress=False, cell_fn=die_on_k3)
    assert (summary.done, summary.failed) == (4, 1)
    table = ResultStore(tmp_path).read_table().set_index("n_components")
    assert (table.drop(index=3)["status"] == "ok").all()
    assert "its worker process died 2 times while running it alone" in table.loc[3, "error"]


def die_after_k2(cell):
    """Finish the K=2 cell, then kill its worker while it is idle (the pool breaks between
    cells: the next submit, not a running cell, meets the broken pool)."""
    outcome = slow_cell(cell)
    if cell.n_components == 2:
        import threading

        threading.Timer(0.05, os._exit, (3,)).start()
    return outcome


def test_a_worker_dying_between_cells_charges_no_cell(tmp_path):
    cells = [Cell("generated", "gaussian_mixture", k, "em", covariance_type="full")
             for k in (1, 2, 3, 4)]
    summary = run_grid(cells, tmp_path, jobs=2, progress=False, cell_fn=die_after_k2)
    assert (summary.done, summary.failed) == (4, 0)
    assert (ResultStore(tmp_path).read_table()["status"] == "ok").all()


SLOW_PLUGIN = """
import os
import time
from experiments.methods import register_method

@register_method("unit_test_sleep")
def sleep(problem, seconds=120.0):
    open(os.path.join(os.environ["UNIT_TEST_MARKS"], str(os.getpid())), "w").close()
    time.sleep(seconds)  # the test ends the run long before
    raise RuntimeError("slept")
"""


def _descendants(pid):
    """Pids of every live process below ``pid`` (Linux /proc)."""
    children = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wchan(pid):
    """What a process is blocked in, per thread (Linux /proc), for a failure message."""
    try:
        return sorted({(t / "wchan").read_text() for t in Path(f"/proc/{pid}/task").iterdir()})
    except OSError as exc:
        return repr(exc)


def _start_slow_grid(tmp_path):
    (tmp_path / "unit_test_slow.py").write_text(SLOW_PLUGIN)
    (tmp_path / "slow.toml").write_text(textwrap.dedent("""
        imports = ["unit_test_slow"]
        [[grid]]
        datasets = [{name = "generated", n = 60, d = 1, k = 2}]
        n_components = [1, 2, 3]
        methods = ["unit_test_sleep"]
        """))
    marks = tmp_path / "marks"  # one file per worker that has started its cell
    marks.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
           "UNIT_TEST_MARKS": str(marks)}
    argv = ["experiments", "run", "--config", str(tmp_path / "slow.toml"), "--out",
            str(tmp_path / "out"), "--jobs", "2", "--no-progress"]
    # the CLI as a terminal starts it: a signal mask and a SIGINT disposition inherited from
    # the pytest worker are recorded (for the failure message) and reset first
    shim = (f"import runpy, signal, sys; open({str(tmp_path / 'inherited')!r}, 'w').write("
            "repr((sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])), "
            "signal.getsignal(signal.SIGINT)))); "
            "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT]); "
            "signal.signal(signal.SIGINT, signal.default_int_handler); "
            f"sys.argv = {argv!r}; runpy.run_module('experiments', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", shim], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:  # both workers started and running a cell
        if len(list(marks.iterdir())) >= 2:
            return proc, _descendants(proc.pid)
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.kill()
    pytest.fail("the workers never started")


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")
def test_workers_die_with_a_killed_parent(tmp_path):
    proc, below = _start_slow_grid(tmp_path)
    assert len(below) >= 3  # two workers and the resource tracker
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while any(_alive(p) for p in below) and time.time() < deadline:
        time.sleep(0.1)
    assert not [p for p in below if _alive(p)], "orphans left behind"


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")
def test_ctrl_c_to_the_process_group_is_quiet(tmp_path):
    proc, below = _start_slow_grid(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stacks = {p: _wchan(p) for p in [proc.pid, *below]}
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"no exit 60 s after Ctrl-C; inherited (blocked signals, SIGINT handler): "
                    f"{(tmp_path / 'inherited').read_text()}; kernel wait channels: {stacks}; "
                    f"stderr: {err!r}")
    seen = f"exit {proc.returncode}; stderr: {err!r}; stdout: {out[-2000:]!r}"  # on failure
    assert proc.returncode == 130, seen
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, seen
    assert len(err.strip().splitlines()) <= 4, seen
    assert "rerun the same command to resume" in err, seen
    deadline = time.time() + 10
    while any(_alive(p) for p in below) and time.time() < deadline:
        time.sleep(0.1)
    assert not [p for p in below if _alive(p)], seen
    assert not (tmp_path / "out" / "cells").is_dir() or not list(
        (tmp_path / "out" / "cells").glob("*/row.json"))  # nothing that never ran is recorded
