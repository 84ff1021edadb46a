"""Command line: ``python -m experiments run|report|list``.

    run    [--config F] [--out DIR] [--jobs N] [--scheduler ADDRESS] [--no-progress]
           [--skip-failed] [--strict]
    report DIR
    list
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path

DEFAULT_CONFIG = "default.toml"


def default_config_path() -> Path:
    return Path(str(resources.files("experiments") / "configs" / DEFAULT_CONFIG))


def _parser():
    p = argparse.ArgumentParser(prog="python -m experiments",
                                description="EM vs MAP vs VI comparison grids.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a grid (resumes: finished cells are skipped)")
    run.add_argument("--config", default=None,
                     help="TOML grid file (default: experiments/configs/default.toml)")
    run.add_argument("--out", default="results", help="output folder (default: results)")
    run.add_argument("--jobs", type=int, default=None,
                     help="local worker processes (default: the config's run.jobs, else 1)")
    run.add_argument("--scheduler", default=None,
                     help="address of a dask.distributed scheduler, e.g. tcp://host:8786")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--skip-failed", action="store_true",
                     help="do not retry cells that failed in an earlier run")
    run.add_argument("--strict", action="store_true",
                     help="exit with status 1 if any cell failed (default: 0, so that a report "
                          "still follows; failed cells are in the table and the report)")
    rep = sub.add_parser("report", help="write figures, report.md and report.html")
    rep.add_argument("out", help="output folder of a run")
    sub.add_parser("list", help="list datasets, models and methods")
    return p


def cmd_run(args) -> int:
    from .config import load_config
    from .runner import run_grid

    config_path = Path(args.config) if args.config else default_config_path()
    config = load_config(config_path)  # ValueError before any work
    jobs = config.jobs if args.jobs is None else args.jobs
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    out = Path(args.out)
    for line in config.skipped:
        print(f"not applicable, skipped: {line}", file=sys.stderr)
    where = f"scheduler {args.scheduler}" if args.scheduler else f"{jobs} job(s)"
    print(f"{len(config.cells)} cells from {config_path} -> {out} ({where})", file=sys.stderr)
    try:
        summary = run_grid(config.cells, out, jobs=jobs, scheduler=args.scheduler,
                           progress=not args.no_progress, retry_failed=not args.skip_failed,
                           imports=config.imports, config_text=config.source)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished cells are saved in {out}; rerun the same command to "
              "resume", file=sys.stderr)
        return 130
    print(f"{summary.total} cells: {summary.skipped} already done, {summary.done} run, "
          f"{summary.failed} failed, in {summary.wall_time:.1f} s ({summary.total_wall_time:.1f}"
          f" s over every run into {out}); table: {out / 'results.csv'}")
    if summary.failed:
        print(f"warning: {summary.failed} cell(s) failed; their errors are in the `error` column "
              f"of {out / 'results.csv'} and in the report; rerun to retry them", file=sys.stderr)
    return 1 if summary.failed and args.strict else 0


def cmd_report(args) -> int:
    from .report import write_report

    html = write_report(args.out)
    print(f"report: {html.resolve()}")
    return 0


def cmd_list(args) -> int:
    from .datasets import DATASETS, FAMILIES
    from .methods import METHODS
    from .models_registry import MODELS

    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 10_000
    print("data families:")
    for f in FAMILIES.values():
        print(f"  {f.name:<20} {f.description}"[:width])
    print("datasets:")
    for e in DATASETS.values():
        split = "(own split) " if e.predefined_split else ""
        print(f"  {e.name:<20} {e.family:<9} {e.kind:<9} {split}{e.description}"[:width])
        print(f"  {'':<20} provenance: {e.provenance}"[:width])
    print("models:")
    for e in MODELS.values():
        options = f" [options: {', '.join(e.options)}]" if e.options else ""
        k = "" if e.has_components else " (no K)"
        print(f"  {e.name:<20} {e.data_family:<9} {e.description}{k}{options}"[:width])
    print("methods:")
    for e in METHODS.values():
        fits = [name for name, m in MODELS.items() if e.supports(m)]
        models = "any model" if e.models is None else ", ".join(fits) or "no registered model"
        print(f"  {e.name:<14} {e.kind:<9} {e.description} [{models}]"[:width])
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"run": cmd_run, "report": cmd_report, "list": cmd_list}[args.command](args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder or file the command cannot use: no traceback
        name = f" {exc.filename!r}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{name}", file=sys.stderr)
        return 2
