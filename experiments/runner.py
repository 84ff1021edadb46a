"""Run a grid: skip finished cells, execute the rest, store each outcome as it completes.

Execution backends, all behind the concurrent.futures interface:
- ``jobs=1``: in this process, one cell after another;
- ``jobs=N``: a ProcessPoolExecutor of N "spawn" workers (fork is unsafe once JAX runs threads);
- ``scheduler=ADDRESS``: a dask.distributed cluster, through ``Client.get_executor()``.
Only this process writes to the store, so workers need no shared disk.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass

from tqdm.auto import tqdm

from .cells import Cell
from .execute import identity_columns, run_cell
from .store import ResultStore


@dataclass(frozen=True)
class RunSummary:
    total: int
    skipped: int  # finished in an earlier run
    done: int
    failed: int
    wall_time: float


class _Inline(cf.Executor):
    """Sequential executor: runs each cell when its result is first needed, in order, so an
    interruption keeps every cell finished before it."""

    def __init__(self):
        self._pending = []

    def submit(self, fn, *args, **kwargs):
        future = cf.Future()
        self._pending.append((future, fn, args, kwargs))
        return future

    def run_in_order(self):
        for future, fn, args, kwargs in self._pending:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:
                    future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
            yield future

    def shutdown(self, wait=True, *, cancel_futures=False):
        if cancel_futures:
            for future, *_ in self._pending:
                future.cancel()


@contextmanager
def make_executor(jobs: int, scheduler: str | None):
    if scheduler:
        from distributed import Client

        client = Client(scheduler)
        try:
            yield client.get_executor()
        finally:
            client.close()
    elif jobs > 1:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            yield pool
    else:
        yield _Inline()


# rough cost per cell, for longest-first scheduling (compilation dominates the NumPyro ones)
COST_RANK = {"vi_mean_field": 0, "vi_full_rank": 0, "nuts": 0, "map": 1, "mle_sgd": 1}


def _order(cells):
    """Expensive methods first (so no slow cell is left alone at the end of a parallel run),
    then cells of the same method and data shape together (so workers reuse compiled code)."""
    return sorted(cells, key=lambda c: (COST_RANK.get(c.method, 2), c.method, c.model,
                                        c.covariance_type, c.dataset, c.n_components, c.seed,
                                        c.key))


def pending_cells(cells, store: ResultStore, retry_failed=True):
    status = store.status()
    keep = [c for c in cells if status.get(c.key) != "ok"
            and not (status.get(c.key) == "failed" and not retry_failed)]
    return keep, len(cells) - len(keep)


def run_grid(cells: list[Cell], out, *, jobs=1, scheduler=None, progress=True,
             retry_failed=True, cell_fn=run_cell, imports=()) -> RunSummary:
    """Run every cell of ``cells`` not already finished in ``out``; return counts.

    imports: modules each worker imports before its cells (GridConfig.imports).
    Each outcome is written to the store the moment it arrives. On KeyboardInterrupt the
    pending cells are cancelled and the interrupt propagates; finished cells stay stored.
    """
    store = ResultStore(out)
    with store.exclusive():
        return _run_locked(cells, store, jobs, scheduler, progress, retry_failed, cell_fn, imports)


def _run_locked(cells, store, jobs, scheduler, progress, retry_failed, cell_fn, imports):
    start = time.perf_counter()
    store.remove_stale_temporaries()  # the lock makes this process the only writer
    todo, skipped = pending_cells(cells, store, retry_failed)
    done = failed = 0
    bar = tqdm(total=len(cells), initial=skipped, desc="cells", unit="cell",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def record(outcome):
        nonlocal done, failed
        store.write(outcome.row, outcome.arrays, outcome.inference_data, outcome.error_text)
        if outcome.row["status"] == "ok":
            done += 1
        else:
            failed += 1
            bar.write(f"failed: {outcome.row['dataset']} K={outcome.row['n_components']} "
                      f"{outcome.row['method']}: {outcome.row['error']}")
        bar.update(1)
        bar.set_postfix(done=done + skipped, failed=failed,
                        remaining=len(cells) - skipped - done - failed)

    with make_executor(jobs, scheduler) as executor:
        args = (imports,) if imports else ()
        futures = {executor.submit(cell_fn, cell, *args): cell for cell in _order(todo)}
        stream = (executor.run_in_order() if isinstance(executor, _Inline)
                  else cf.as_completed(futures))
        try:
            for future in stream:
                try:
                    outcome = future.result()
                except BrokenProcessPool as exc:
                    outcome = _failed(futures[future], exc, "worker process died")
                except Exception as exc:  # noqa: BLE001  (recorded, never dropped)
                    outcome = _failed(futures[future], exc, "the cell raised")
                record(outcome)
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            bar.close()
            raise
    bar.close()
    return RunSummary(len(cells), skipped, done, failed, time.perf_counter() - start)


def _failed(cell, exc, what):
    """A cell that produced no outcome (its worker died, or the cell function raised):
    recorded as failed, so that the next run retries it."""
    from .execute import CellOutcome

    row = identity_columns(cell)
    row.update(status="failed", error=f"{what} ({type(exc).__name__}: {exc}); rerun to retry")
    return CellOutcome(row, {}, None, None)
