"""Peak memory of models.fit_map / models.fit_vi on a big mixture, before and after a change.

    python -m benchmarks.numpyro_memory [--n 1000000] [--d 8] [--k 8] [--before main]

Each case (routine x covariance type x code version) runs in its own subprocess, which builds
the data (N, D) itself and reports its peak resident set size (ru_maxrss) and its RSS before
the fit (imports and data); "fit added" is the difference. The "before" version is the
``models/`` package exported from the git revision ``--before`` (``git archive``) into a
temporary directory and put first on the subprocess's path (em_reference and the rest come from
this tree), so both versions fit the same data with the same options. Few steps: the peak is
set by one step's temporaries, not by the number of steps. Issue 20's target: peak <= 2 GB at
(1,000,000, 8, 8). --before none skips the old version.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = [(routine, ct) for routine in ("fit_map", "fit_vi") for ct in ("full", "diag")]
TARGET_MB = 2048


def child(routine, covariance_type, n, d, k):
    """Runs in the subprocess: one fit, then print a JSON line with the memory numbers."""
    import time

    import numpy as np

    import models
    from benchmarks.measure import peak_rss_mb, rss_mb

    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 4.0, (k, d))
    X = centres[rng.integers(k, size=n)] + rng.normal(size=(n, d))
    before = rss_mb()
    options = ({"num_steps": 20, "window": 10, "polish_maxiter": 5} if routine == "fit_map"
               else {"num_steps": 20, "window": 10, "num_samples": 10, "elbo_particles": 20})
    t0 = time.perf_counter()
    res = getattr(models, routine)(models.gaussian_mixture, X, k, covariance_type=covariance_type,
                                   prior="default", **options)
    print(json.dumps({"routine": routine, "covariance_type": covariance_type,
                      "models_from": str(Path(models.__file__).parent),
                      "rss_before_fit_mb": before, "peak_rss_mb": peak_rss_mb(),
                      "fit_added_mb": peak_rss_mb() - before, "data_mb": X.nbytes / 2**20,
                      "seconds": time.perf_counter() - t0, "status": res.status
                      if hasattr(res, "status") else str(res.converged)}))


def export_models(revision: str, into: Path) -> Path:
    """``models/`` as of ``revision`` -> into/models; returns ``into``."""
    archive = into / "models.tar"
    with open(archive, "wb") as fh:
        subprocess.run(["git", "-C", str(ROOT), "archive", revision, "models"], stdout=fh,
                       check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def run_case(routine, covariance_type, n, d, k, models_root: Path | None):
    path = ([str(models_root)] if models_root else []) + [str(ROOT)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    code = (f"from benchmarks.numpyro_memory import child; "
            f"child({routine!r}, {covariance_type!r}, {n}, {d}, {k})")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(models_root or ROOT),
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {"routine": routine, "covariance_type": covariance_type,
                "error": (out.stderr.strip().splitlines() or ["killed"])[-1],
                "returncode": out.returncode}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--before", default="main",
                        help="git revision of the old models/ ('none' to skip)")
    args = parser.parse_args(argv)
    print(f"peak RSS of fit_map / fit_vi, gaussian_mixture prior='default', "
          f"(N, D, K) = ({args.n:,}, {args.d}, {args.k}); target <= {TARGET_MB} MB")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        versions = [("after", None)]
        if args.before != "none":
            versions.insert(0, (f"before ({args.before})",
                                export_models(args.before, Path(tmp))))
        for routine, ct in CASES:
            for label, root in versions:
                row = run_case(routine, ct, args.n, args.d, args.k, root)
                row["version"] = label
                rows.append(row)
                if "error" in row:
                    print(f"{routine:8s} {ct:5s} {label:16s} FAILED (exit {row['returncode']}):"
                          f" {row['error']}")
                    continue
                print(f"{routine:8s} {ct:5s} {label:16s} peak {row['peak_rss_mb']:8.0f} MB  "
                      f"fit added {row['fit_added_mb']:8.0f} MB  (data {row['data_mb']:.0f} MB,"
                      f" {row['seconds']:.0f} s, status {row['status']})  "
                      + ("" if label != "after" else
                         ("meets" if row["peak_rss_mb"] <= TARGET_MB else "MISSES")
                         + " the target"))
    by = {(r["routine"], r["covariance_type"], r["version"]): r for r in rows}
    if args.before != "none":
        print("ratio before / after of the memory a fit adds:")
        for routine, ct in CASES:
            old = by[(routine, ct, f"before ({args.before})")]
            new = by[(routine, ct, "after")]
            if "error" not in old and "error" not in new:
                print(f"  {routine} {ct}: {old['fit_added_mb'] / new['fit_added_mb']:.1f}x")
    return 0 if all("error" not in r and r["peak_rss_mb"] <= TARGET_MB
                    for r in rows if r["version"] == "after") else 1


if __name__ == "__main__":
    raise SystemExit(main())
