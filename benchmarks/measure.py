"""Timing and memory helpers.

Seconds per iteration are *marginal*: each round times a fit of m1 and of m2 > m1 iterations
back to back, and (median t(m2) - median t(m1)) / (m2 - m1) removes what a fit pays once
(validation, host to device copies, scikit-learn's initial M-step and final E-step,
em_reference's final labels).
The first call of each (runner, max_iter) is a warm-up (for JAX: the compilation) and is
reported, never counted. Contenders take turns inside every round, in a rotating order, so a
burst of load from elsewhere on the machine hits all of them alike; the medians over rounds are
reported. Each turn starts with untimed fits of m1 iterations for at least TURN_WARMUP_S: after
a multi-threaded call OpenBLAS's idle workers busy-spin for ~0.1 s, so a contender timed right
after scikit-learn would share the cores with its leftover threads, and a pause instead of the
warm-up leaves this virtual machine's cores cold (measured at (100,000, 8, 8, diag), em_reference
per iteration: 3.9 ms back to back, 6.9 ms after a 0.2 s sleep, 5.2 ms after 50 ms of JAX work).
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np


TURN_WARMUP_S = 0.15


def warm_up(fit, m1: int, seconds: float = TURN_WARMUP_S):
    """Untimed fit(m1) calls, at least one, until ``seconds`` have passed."""
    start = time.perf_counter()
    fit(m1)
    while time.perf_counter() - start < seconds:
        fit(m1)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def interleaved_rounds(runners, m1: int, m2: int, repeats: int, budget_s: float = 60.0) -> dict:
    """Time every runner at m1 and m2 iterations, ``repeats`` rounds. A runner whose timed
    calls have used ``budget_s`` seconds sits out the remaining rounds once it has three (one
    burst of load cannot decide a median): a pathologically slow configuration cannot eat
    the whole benchmark. Returns per runner
    name: first_m1/first_m2 (warm-up calls, s), t_m1/t_m2 (lists, s), per_iter (list, s) and
    the parameters of the last m2 fit."""
    if not m2 > m1 >= 1:
        raise ValueError(f"need m2 > m1 >= 1, got m1={m1}, m2={m2}")
    out = {}
    for r in runners:
        first_m1, _ = timed(r.fit, m1)
        first_m2, params = timed(r.fit, m2)
        out[r.name] = {"first_m1": first_m1, "first_m2": first_m2, "t_m1": [], "t_m2": [],
                       "per_iter": [], "params": params, "spent": 0.0}
    for rnd in range(repeats):
        order = runners[rnd % len(runners):] + runners[:rnd % len(runners)]
        for r in order:
            rec = out[r.name]
            if len(rec["per_iter"]) >= 3 and rec["spent"] > budget_s:
                continue
            warm_up(r.fit, m1)
            t1, _ = timed(r.fit, m1)
            t2, params = timed(r.fit, m2)
            rec["t_m1"].append(t1)
            rec["t_m2"].append(t2)
            rec["per_iter"].append((t2 - t1) / (m2 - m1))
            rec["params"] = params
            rec["spent"] += t1 + t2
    return out


def summarize(rec: dict, m1: int, m2: int) -> dict:
    """Medians (and spread) of one runner's rounds."""
    per_iter = np.asarray(rec["per_iter"])
    t1, t2 = float(np.median(rec["t_m1"])), float(np.median(rec["t_m2"]))
    return {
        # medians of the two fit times, then the difference: one slow call out of three or
        # more cannot move it (a median of per-round differences can, with few rounds)
        "s_per_iter": (t2 - t1) / (m2 - m1),
        "s_per_iter_median_of_rounds": float(np.median(per_iter)),
        "s_per_iter_min": float(np.min(per_iter)),
        "s_per_iter_iqr": float(np.subtract(*np.percentile(per_iter, [75, 25]))),
        "fit_s": t2,  # whole fit of m2 iterations through the public API, warm
        "fixed_s": max(0.0, t2 - m2 * (t2 - t1) / (m2 - m1)),
        # the warm-up call minus a warm call of the same size: compilation (JAX) or
        # first-call effects (caches, thread pools) for scikit-learn
        "first_call_extra_s": max(0.0, rec["first_m2"] - t2),
        "m1": m1, "m2": m2, "rounds": len(per_iter),
    }


def rss_mb() -> float:
    """Current resident set size of this process (MiB)."""
    try:
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss / 2**20
    except ImportError:  # pragma: no cover - psutil is in the bench extra
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB; ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> float:
    try:
        return float(os.getloadavg()[0])
    except OSError:  # pragma: no cover
        return float("nan")


def marginal_time_parser(description: str, m1: int, m2: int, repeats: int):
    """The command line of a per-iteration benchmark at one shape: --n --d --k,
    --covariance-types, the marginal time's --m1 --m2 --repeats, and --out (a copy of the
    report)."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--d", type=int, default=8)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--covariance-types", nargs="+", default=["full", "diag"])
    p.add_argument("--m1", type=int, default=m1)
    p.add_argument("--m2", type=int, default=m2)
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--out", default=None, help="also write the report to this file")
    return p


def write_report(lines, path) -> None:
    """The report's lines into ``path`` (nothing when path is None)."""
    if path:
        with open(path, "w") as fh:
            fh.write("\n".join(lines) + "\n")


def report_lines(title: str):
    """(lines, say) of a benchmark report: say(text) prints a line and keeps it in lines; the
    report starts with ``title``, the date, the processor and the load average."""
    import platform

    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    say(title)
    say(f"{time.strftime('%Y-%m-%d %H:%M')}  {platform.processor() or platform.machine()}, "
        f"load average {load_average():.1f} at start")
    return lines, say
