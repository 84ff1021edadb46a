"""Where the default grid's time goes, before and after compile-once (issue 20): the grid
run three times in this one invocation, each in a fresh process with its own output folder:

- ``row_bucket=0, cold``: the EM methods lay every data set out at its own size (each cell
  compiles its own EM loop), empty persistent compilation cache;
- ``row_bucket=default, cold``: the rows padded to em_methods.ROW_BUCKET * 2**j, empty cache;
- ``row_bucket=default, warm``: the same again, with the cache the previous run filled.

For each it prints the grid's wall time, the cells' whole time (cell_time) and the part JAX
spent tracing, lowering and compiling (cell_compile_time, experiments/compile_clock.py), the
compile share, cells per minute, and per method the compile and whole seconds; then the
ratios against the first run.

    python -m benchmarks.grid_compile [--jobs 2] [--datasets height faithful] [--methods em]
        [--runs off-cold on-cold on-warm] [--out benchmarks/results/grid_compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

RUNS = {  # name: (row_bucket option of the EM methods or None for the default, cache)
    "off-cold": (0, "cold"),
    "on-cold": (None, "cold"),
    "on-warm": (None, "warm"),
}
EM_METHODS = ("em", "map_em", "hard_em")


def grid_cells(config, datasets, methods, row_bucket):
    """The config's cells, filtered, with the EM methods' row_bucket set (None: untouched)."""
    from experiments.config import load_config

    cells = [c for c in load_config(config).cells
             if (not datasets or c.dataset in datasets) and (not methods or c.method in methods)]
    if row_bucket is None:
        return cells
    return [dataclasses.replace(c, method_options={**c.method_options, "row_bucket": row_bucket})
            if c.method in EM_METHODS else c for c in cells]


def run_one(args):
    """Child process: run the grid into args.child_out (JAX's cache dir is already set)."""
    import experiments  # noqa: F401  (registrations)
    from experiments.runner import run_grid

    cells = grid_cells(args.config, args.datasets, args.methods, args.row_bucket)
    start = time.perf_counter()
    summary = run_grid(cells, args.child_out, jobs=args.jobs, progress=False)
    print(json.dumps({"grid_seconds": time.perf_counter() - start, "cells": len(cells),
                      "failed": summary.failed}))


def summarise(out_dir, grid_seconds):
    df = pd.read_csv(Path(out_dir) / "results.csv")
    ok = df[df["status"] == "ok"]
    per_method = ok.groupby("method")[["cell_time", "cell_compile_time"]].sum()
    whole, compiling = ok["cell_time"].sum(), ok["cell_compile_time"].sum()
    return {"cells": len(df), "failed": int((df["status"] != "ok").sum()),
            "grid_seconds": grid_seconds, "cell_seconds": whole, "compile_seconds": compiling,
            "compile_share": compiling / whole if whole > 0 else float("nan"),
            "cells_per_minute": 60 * len(df) / grid_seconds, "per_method": per_method}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="experiments/configs/default.toml")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--datasets", nargs="*", help="only the cells of these datasets")
    ap.add_argument("--methods", nargs="*", help="only the cells of these methods")
    ap.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--out", default=None, help="keep the runs' folders here (default: a "
                    "temporary folder)")
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    ap.add_argument("--row-bucket", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if args.child_out:
        return run_one(args)

    root = Path(args.out or tempfile.mkdtemp(prefix="grid_compile-"))
    cache = root / "jax-cache"
    results = {}
    for name in args.runs:
        row_bucket, state = RUNS[name]
        out = root / name
        # a cold run must start from an empty cache: a failure to remove it raises
        for stale in ([cache] if state == "cold" else []) + [out]:
            if stale.exists():
                shutil.rmtree(stale)
        cmd = [sys.executable, "-m", "benchmarks.grid_compile", "--config", args.config,
               "--jobs", str(args.jobs), "--child-out", str(out)]
        cmd += ["--datasets", *args.datasets] if args.datasets else []
        cmd += ["--methods", *args.methods] if args.methods else []
        cmd += ["--row-bucket", str(row_bucket)] if row_bucket is not None else []
        env = {**os.environ, "MIXBENCH_JAX_CACHE": str(cache)}
        start = time.perf_counter()
        child = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if child.returncode != 0:
            sys.stderr.write(child.stderr)
            raise SystemExit(f"{name}: the grid run failed (exit {child.returncode})")
        wall = time.perf_counter() - start
        report = json.loads(child.stdout.strip().splitlines()[-1])
        results[name] = summarise(out, report["grid_seconds"])
        r = results[name]
        print(f"{name:9s} {r['cells']} cells ({r['failed']} failed): "
              f"grid {r['grid_seconds']:.0f} s (process {wall:.0f} s), "
              f"cells {r['cell_seconds']:.0f} s of which compiling "
              f"{r['compile_seconds']:.0f} s = {100 * r['compile_share']:.0f}%, "
              f"{r['cells_per_minute']:.1f} cells/min", flush=True)
    print("\nper method: whole cell seconds (cell_time), the part compiling "
          "(cell_compile_time)")
    table = pd.concat({name: r["per_method"].round(1) for name, r in results.items()}, axis=1)
    print(table.to_string())
    first = args.runs[0]
    for name in args.runs[1:]:
        a, b = results[first], results[name]
        print(f"{name} vs {first}: grid wall {b['grid_seconds'] / a['grid_seconds']:.2f}x, "
              f"compile seconds {b['compile_seconds'] / a['compile_seconds']:.2f}x, "
              f"compile share {100 * a['compile_share']:.0f}% -> "
              f"{100 * b['compile_share']:.0f}%")


if __name__ == "__main__":
    main()
