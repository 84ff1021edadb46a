"""Run a grid: skip finished cells, execute the rest, store each outcome as it completes.

Execution backends:
- ``jobs=1``: in this process, one cell after another;
- ``jobs=N``: N local "spawn" worker processes (fork is unsafe once JAX runs threads);
- ``scheduler=ADDRESS``: a dask.distributed cluster, through ``Client.get_executor()``.
Only this process writes to the store, so workers need no shared disk.

Local workers never outlive the run: each one ignores Ctrl-C (the parent cancels and reports
once) and exits as soon as its parent is gone (PR_SET_PDEATHSIG on Linux, and a watchdog thread
polling the parent's pid everywhere). At most N cells are in flight, so when a worker dies
(killed, out of memory) the cells it may have been running are known: they are rerun one at a
time in a fresh pool, and only a cell whose worker dies while it runs alone is charged with the
death; the second such death records it as failed. Cells that never ran are never recorded.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass

from tqdm.auto import tqdm

from .cells import Cell
from .execute import CellOutcome, identity_columns, run_cell
from .methods import METHODS
from .store import ResultStore, atomic_write_text

MAX_WORKER_DEATHS = 2   # a cell whose worker dies this often while it runs alone has failed
MAX_IDLE_BREAKS = 5     # pools broken with no cell in flight before the run gives up
WATCHDOG_PERIOD = 0.5   # seconds between a worker's checks that its parent is alive


@dataclass(frozen=True)
class RunSummary:
    total: int
    skipped: int  # finished in an earlier run
    done: int
    failed: int
    wall_time: float        # this run
    total_wall_time: float  # every run into this folder, this one included


def _cost_rank(method: str) -> int:
    entry = METHODS.get(method)  # the registration's rough cost of a cell (0: the slowest)
    return entry.cost_rank if entry is not None else 2


def _order(cells):
    """Expensive methods first (so no slow cell is left alone at the end of a parallel run),
    then cells of the same method and data shape together (so workers reuse compiled code),
    with each seed's cells after the lower seeds' of the method: placed side by side, the
    seed-0 and seed-1 cells of one configuration ran at once on two workers and both
    compiled the same programs; apart, the later one finds them compiled (in its worker's
    memory or the persistent cache)."""
    return sorted(cells, key=lambda c: (_cost_rank(c.method), c.method, c.model, c.seed,
                                        c.covariance_type, c.dataset, c.n_components or 0,
                                        c.key))


def pending_cells(cells, store: ResultStore, retry_failed=True):
    status = store.status()
    keep = [c for c in cells if status.get(c.key) != "ok"
            and not (status.get(c.key) == "failed" and not retry_failed)]
    return keep, len(cells) - len(keep)


def run_grid(cells: list[Cell], out, *, jobs=1, scheduler=None, progress=True,
             retry_failed=True, cell_fn=run_cell, imports=(), config_text=None) -> RunSummary:
    """Run every cell of ``cells`` not already finished in ``out``; return counts.

    imports: modules each worker imports before its cells (GridConfig.imports).
    config_text: the grid file, written to ``out/config.toml`` once the run holds the
    folder's lock (a run refused by the lock changes nothing).
    Each outcome is written to the store the moment it arrives. On KeyboardInterrupt the
    pending cells are cancelled and the interrupt propagates; finished cells stay stored.
    """
    store = ResultStore(out)
    with store.exclusive():
        if config_text is not None:
            atomic_write_text(store.root / "config.toml", config_text)
        return _run_locked(cells, store, jobs, scheduler, progress, retry_failed, cell_fn,
                           imports)


def _run_locked(cells, store, jobs, scheduler, progress, retry_failed, cell_fn, imports):
    store.remove_stale_temporaries()  # the lock makes this process the only writer
    run = store.start_run(cells=len(cells), jobs=jobs, scheduler=scheduler or "")
    store.heal()
    todo, skipped = pending_cells(cells, store, retry_failed)
    counts = {"done": 0, "failed": 0}
    run.update(skipped=skipped)
    bar = tqdm(total=len(cells), initial=skipped, desc="cells", unit="cell",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def record(outcome):
        store.write(outcome.row, outcome.arrays, outcome.inference_data, outcome.error_text)
        if outcome.row["status"] == "ok":
            counts["done"] += 1
        else:
            counts["failed"] += 1
            k = outcome.row["n_components"]
            bar.write(f"failed: {outcome.row['dataset']}{'' if k is None else f' K={k}'} "
                      f"{outcome.row['method']}: {outcome.row['error']}")
        run.update(**counts)
        bar.update(1)
        bar.set_postfix(done=counts["done"] + skipped, failed=counts["failed"],
                        remaining=len(cells) - skipped - counts["done"] - counts["failed"])

    args = (imports,) if imports else ()
    try:
        if scheduler:
            _run_dask(_order(todo), scheduler, cell_fn, args, record)
        elif jobs > 1:
            _run_pool(_order(todo), jobs, cell_fn, args, record)
        else:
            for cell in _order(todo):
                record(_call(cell_fn, cell, args))
    except BaseException:
        store.write_table()
        run.finish("interrupted", **counts)
        bar.close()
        raise
    store.write_table()
    run.finish("finished", **counts)
    bar.close()
    total = sum(float(r["wall_time"]) for r in store.run_records())
    return RunSummary(len(cells), skipped, counts["done"], counts["failed"],
                      float(run.data["wall_time"]), total)


def _call(cell_fn, cell, args):
    try:
        return cell_fn(cell, *args)
    except Exception as exc:  # noqa: BLE001  (recorded, never dropped)
        return _failed(cell, f"the cell raised ({type(exc).__name__}: {exc})")


def _failed(cell, reason):
    """A cell that produced no outcome, recorded as failed (the next run retries it)."""
    row = identity_columns(cell)
    row.update(status="failed", error=f"{reason}; rerun to retry")
    return CellOutcome(row, {}, None, None)


# ---------------------------------------------------------------------- dask
def _run_dask(cells, scheduler, cell_fn, args, record):
    from distributed import Client

    client = Client(scheduler)
    try:
        executor = client.get_executor()
        futures = {executor.submit(cell_fn, cell, *args): cell for cell in cells}
        try:
            for future in cf.as_completed(futures):
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001  (recorded, never dropped)
                    outcome = _failed(futures[future],
                                      f"the cell raised ({type(exc).__name__}: {exc})")
                record(outcome)
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
    finally:
        client.close()


# ---------------------------------------------------------------------- local workers
def _watch_parent(parent_pid):
    while True:
        time.sleep(WATCHDOG_PERIOD)
        if os.getppid() != parent_pid:
            os._exit(1)  # orphaned: nobody will read this worker's results


def _worker_init(parent_pid):
    """Runs first in every worker: ignore Ctrl-C (the parent handles it), die with the
    parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                     name="mixbench-parent-watchdog").start()


@contextmanager
def _sigint_ignored():
    """Ignore SIGINT while worker processes are spawned: they start ignoring it (an ignored
    signal stays ignored across exec), so a Ctrl-C during their imports prints nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _new_pool(jobs):
    ctx = multiprocessing.get_context("spawn")
    return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init,
                                  initargs=(os.getpid(),))


def _kill_workers(pool):
    # the pool's own shutdown waits for running cells (minutes for a NUTS cell); on an
    # interrupt the workers are killed instead. _processes is private but stable (3.8-3.13).
    for process in list(getattr(pool, "_processes", {}).values()):
        try:
            process.kill()
        except (OSError, AttributeError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)


def _collect(futures, in_flight, died, record) -> bool:
    """Record the outcomes of finished ``futures``; cells whose worker died go to ``died``.
    Returns whether the pool broke."""
    broken = False
    for future in futures:
        cell = in_flight.pop(future)
        try:
            outcome = future.result()
        except BrokenProcessPool:
            died.append(cell)
            broken = True
            continue
        except Exception as exc:  # noqa: BLE001  (recorded, never dropped)
            outcome = _failed(cell, f"the cell raised ({type(exc).__name__}: {exc})")
        record(outcome)
    return broken


def _run_pool(cells, jobs, cell_fn, args, record):
    queue = collections.deque(cells)
    alone = collections.deque()  # cells in flight when a worker died: rerun one at a time
    deaths = collections.Counter()  # cell key -> deaths of its worker while it ran alone
    idle_breaks = 0  # pools that broke with no cell in flight, in a row
    while queue or alone:
        pool = _new_pool(jobs)
        in_flight: dict[cf.Future, Cell] = {}
        died, broken = [], False
        try:
            while (queue or alone or in_flight) and not broken:
                limit = 1 if alone else jobs
                while len(in_flight) < limit and (alone or queue):
                    source = alone if alone else queue
                    cell = source.popleft()
                    try:
                        with _sigint_ignored():
                            in_flight[pool.submit(cell_fn, cell, *args)] = cell
                    except BrokenProcessPool:  # a worker died since the last result
                        source.appendleft(cell)  # never started: not a suspect
                        broken = True
                        break
                if not broken:
                    finished = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)[0]
                    broken = _collect(finished, in_flight, died, record)
            if broken:  # the broken pool fails every pending future at once
                _collect(cf.wait(in_flight)[0], in_flight, died, record)
        except BaseException:
            _kill_workers(pool)
            raise
        if not broken:
            pool.shutdown(wait=True)
            continue
        _kill_workers(pool)
        idle_breaks = 0 if died else idle_breaks + 1
        if idle_breaks >= MAX_IDLE_BREAKS:
            raise RuntimeError(f"worker processes died {idle_breaks} times in a row while "
                               "idle (out of memory?); finished cells are saved")
        if len(died) == 1:
            cell = died[0]
            deaths[cell.key] += 1
            if deaths[cell.key] >= MAX_WORKER_DEATHS:
                record(_failed(cell, f"its worker process died {deaths[cell.key]} times while "
                                     "running it alone (killed, or out of memory)"))
                continue
        alone.extendleft(reversed(died))
