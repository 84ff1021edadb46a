"""The benchmark script runs end to end in --quick mode (tiny sizes), so it cannot rot.

Nothing here looks at a timing: the quick sizes make them meaningless. What is checked is that
every job ran, every table and figure was written, and that the contenders, fed the same data
and the same start for the same iterations, reached the same answer.
"""

import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs_end_to_end(tmp_path):
    """One test (one run of the script, also under pytest-xdist): every job ran, every table
    and figure exists, and the records that are not timings hold."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run_benchmarks", "--out",
                           str(tmp_path), "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    check_tables_and_figures(tmp_path, proc.stdout)
    check_contenders_agree(tmp_path)
    check_compilation_and_streaming(tmp_path)


def check_tables_and_figures(out, stdout):
    for name in ("cases.csv", "memory.csv", "scaling.csv", "restarts.csv", "first_fit.csv",
                 "streaming.csv", "fit_map.csv", "machine.json", "summary.md", "speedup.png",
                 "scaling.png", "memory.png"):
        assert (out / name).stat().st_size > 0, name
    summary = (out / "summary.md").read_text()
    assert "Targets (issue 6)" in summary and "Failed jobs" not in summary
    assert "Targets (issue 6)" in stdout


def check_contenders_agree(out):
    """Same data, same start, same iterations: the same answer (the quick run's timings are
    meaningless, its answers are not)."""
    cases = pd.read_csv(out / "cases.csv")
    assert {"em_reference", "sklearn", "sklearn_1t", "gmmx"} <= set(cases.contender)
    f64 = cases[cases.dtype == "float64"]
    f32 = cases[cases.dtype == "float32"]
    assert (f64["loglik_diff_vs_em"].abs() < 1e-9).all(), f64
    assert (f32["loglik_diff_vs_em"].abs() < 1e-4).all(), f32
    for column in ("s_per_iter", "gflops", "fit_s", "first_call_extra_s", "speedup_vs_sklearn"):
        assert column in cases


def check_compilation_and_streaming(out):
    first = pd.read_csv(out / "first_fit.csv").set_index("run")
    assert (first["second_compiles"] == 0).all()  # a count of compilations, not a timing
    assert first.loc["cache_all_warm", "first_cache_hits"] > 0
    streaming = pd.read_csv(out / "streaming.csv")
    assert set(streaming["mode"]) == {"estimator", "core"}
    assert (streaming["weights_sum"] - 1.0).abs().max() < 1e-9
    fit_map = pd.read_csv(out / "fit_map.csv")
    status = fit_map["status"].iloc[0]
    assert status == "ok" or status.startswith("unavailable"), status
