"""Does every EM-type cell of the default grid reach a certified optimum with the methods'
default options (no tol override)? Fits each em / map_em / hard_em cell in this process and
prints its status, E-steps, certificate and time (and, for em, the census of restarts).

    python -m benchmarks.default_grid_certified [--acceleration none] [--no-restarts]
        [--datasets height london_deaths]
"""

from __future__ import annotations

import argparse
import time

import experiments  # noqa: F401  (registrations)
from experiments.config import load_config
from experiments.execute import fit_method
from experiments.problem import build_problem

EM_METHODS = ("em", "map_em", "hard_em")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="experiments/configs/default.toml")
    ap.add_argument("--acceleration", default=None, choices=("squarem", "none"))
    ap.add_argument("--no-restarts", action="store_true")
    ap.add_argument("--datasets", nargs="*", help="only the cells of these datasets")
    args = ap.parse_args(argv)
    cells = [c for c in load_config(args.config).cells if c.method in EM_METHODS
             and (not args.datasets or c.dataset in args.datasets)]
    failed = 0
    start_all = time.perf_counter()
    for cell in cells:
        options = dict(cell.method_options)
        if args.acceleration and cell.method != "hard_em":
            options["acceleration"] = args.acceleration
        if args.no_restarts and cell.method == "em":
            options["n_restarts"] = 0
        start = time.perf_counter()
        fit = fit_method(build_problem(cell), cell.method, options)
        seconds = time.perf_counter() - start
        failed += fit.status != "ok"
        extra = fit.extra or {}
        print(f"{cell.dataset:22s} K={cell.n_components} {cell.covariance_type or '-':9s} "
              f"{cell.method:8s} {fit.status:13s} steps={fit.n_steps:6d} "
              f"grad={extra.get('gradient_norm', float('nan')):.2e} "
              f"dist={extra.get('distance_to_optimum', float('nan')):.1e} {seconds:6.2f} s",
              flush=True)
    print(f"{len(cells)} EM-type cells, {failed} not certified, "
          f"{time.perf_counter() - start_all:.0f} s")


if __name__ == "__main__":
    main()
