"""Many differently shaped EM fits in one process: memory mappings and RSS stay bounded.

    python -m benchmarks.many_shapes [--fits 1000] [--budget N] [--every 50]

One subprocess fits --fits random problems one after another (N in 50..3000, D in 1..6,
K in 1..5, a random covariance type, prior None or "default", n_init 1..3; tol=0 and
max_iter=20, as a sweep or a notebook would), each of a shape it has most likely not compiled
before, and prints every --every fits its memory mappings (/proc/self/maps) and resident set
size. Issue 21 item 1: without a bound the process gained ~190 mappings and ~10 MB per new
shape and died (SIGSEGV) near the kernel's 65,530-mapping limit after ~330 fits. --budget sets
em_reference.tuning.MEMORY_MAPS_BUDGET in the subprocess (default: the tree's own; a huge
value shows the unbounded growth).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def child(n_fits, budget, every):
    import warnings

    import numpy as np

    from benchmarks.measure import peak_rss_mb, rss_mb
    from em_reference import GaussianMixtureEM, config, tuning

    if budget is not None:
        tuning.MEMORY_MAPS_BUDGET = budget
    rng = np.random.default_rng(0)
    warnings.simplefilter("ignore")
    rows = []
    for i in range(1, n_fits + 1):
        n, d, k = int(rng.integers(50, 3001)), int(rng.integers(1, 7)), int(rng.integers(1, 6))
        ct = str(rng.choice(["full", "tied", "diag", "spherical"]))
        X = rng.normal(size=(n, d)) + 4.0 * rng.normal(size=(k, d))[rng.integers(0, k, n)]
        GaussianMixtureEM(k, covariance_type=ct, tol=0.0, max_iter=20,
                          n_init=int(rng.integers(1, 4)),
                          prior=None if rng.random() < 0.5 else "default",
                          random_state=i).fit(X)
        if i % every == 0 or i == n_fits:
            rows.append({"fits": i, "maps": config.memory_map_count(), "rss_mb": rss_mb()})
            print(json.dumps(rows[-1]), flush=True)
    print("RESULT " + json.dumps({"rows": rows, "peak_rss_mb": peak_rss_mb(),
                                  "budget": tuning.MEMORY_MAPS_BUDGET}), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=1000)
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.fits, args.budget, args.every)
    cmd = [sys.executable, "-m", "benchmarks.many_shapes", "--child", "--fits", str(args.fits),
           "--every", str(args.every)] + ([] if args.budget is None
                                          else ["--budget", str(args.budget)])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode:
        sys.stdout.write(proc.stderr[-3000:])
        print(f"the fitting process died: return code {proc.returncode}")
        return 1
    result = json.loads(proc.stdout.rsplit("RESULT ", 1)[1])
    maps = [r["maps"] for r in result["rows"]]
    print(f"{args.fits} fits, budget {result['budget']}: memory mappings at most {max(maps)} "
          f"(last {maps[-1]}), peak RSS {result['peak_rss_mb']:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
