"""benchmarks/grid_compile.py runs end to end on a one-cell grid, so it cannot rot: both runs
finish, the first with the EM rows laid out at their own size (row_bucket 0) and the second
with the default bucket, and the compile share it prints is the one the rows hold. No timing
is judged."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from experiments.methods.em_methods import ROW_BUCKET

ROOT = Path(__file__).resolve().parents[2]


def test_the_grid_benchmark_runs_both_layouts_and_prints_the_rows_share(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.grid_compile", "--jobs", "1", "--datasets",
         "height", "--methods", "hard_em", "--runs", "off-cold", "on-warm", "--out",
         str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for run, bucket in (("off-cold", 0), ("on-warm", ROW_BUCKET)):
        rows = pd.read_csv(tmp_path / run / "results.csv")
        assert list(rows["status"]) == ["ok"] and list(rows["method"]) == ["hard_em"]
        # the row's resolved method options, defaults included
        assert json.loads(rows["method_options"].iloc[0])["row_bucket"] == bucket
        cell, compiling = rows["cell_time"].iloc[0], rows["cell_compile_time"].iloc[0]
        assert 0 < compiling <= cell
        printed = re.search(rf"^{run}\s+1 cells \(0 failed\).* = (\d+)%", proc.stdout, re.M)
        assert printed, proc.stdout
        assert int(printed.group(1)) == round(100 * compiling / cell)
    assert "on-warm vs off-cold" in proc.stdout
    assert any((tmp_path / "jax-cache").iterdir())  # the runs' own persistent cache
