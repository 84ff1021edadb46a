"""A printer for the benchmark scripts: every line goes to stdout and, flushed at once, to
the result file (a killed run keeps what it printed)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


class Report:
    def __init__(self, path):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "w")  # noqa: SIM115 (closed in close())
        self("# " + time.strftime("%Y-%m-%d %H:%M:%S") + f" on {platform.node()}, "
             f"{os.cpu_count()} cores; load average {os.getloadavg()}")
        self("# the machine is shared with other jobs: ratios measured in this run mean "
             "something, absolute times do not")

    def __call__(self, line=""):
        print(line, flush=True)
        if self.path:
            self.file.write(line + "\n")
            self.file.flush()

    def close(self):
        if self.path:
            self.file.close()


def nats(est):
    """'mean +- se_mean (sd over points / sqrt(N) = ...)' of a PointEstimate."""
    import numpy as np

    n = len(est.values)
    return (f"{est.mean:9.3f} +- {est.se_mean:.3f} (MC)  +- {est.sd / np.sqrt(n):.3f} "
            f"(test-set sampling, N={n})")


def report_gaps(report, title, gaps, seconds):
    """The gap decomposition's lines: the three bounds, each gap with its MC and test-set
    sampling SEs, whether amortization > approximation (Cremer et al.) beyond 2 MC SEs, and
    the q* objective at its first and last step (a check that it moved and settled)."""
    import numpy as np

    report(f"{title} ({len(gaps.log_px.values)} images, {seconds:.0f} s): log p(x) "
           f"{gaps.log_px.mean:.3f}, ELBO(q) {gaps.elbo_amortized.mean:.3f}, ELBO(q*) "
           f"{gaps.elbo_local.mean:.3f}")
    for field in ("inference_gap", "approximation_gap", "amortization_gap"):
        g = getattr(gaps, field)
        report(f"    {field:18s} {g.mean:7.3f} +- {g.se_mean:.3f} (MC) "
               f"+- {g.sd / np.sqrt(len(g.values)):.3f} (points)")
    amort, approx = gaps.amortization_gap, gaps.approximation_gap
    se = np.hypot(amort.se_mean, approx.se_mean)
    per_point = amort.values - approx.values
    se_points = per_point.std(ddof=1) / np.sqrt(len(per_point))
    delta = amort.mean - approx.mean
    report(f"    amortization > approximation (Cremer et al.): "
           f"{'yes' if delta > 2 * max(se, se_points) else 'NO'} (difference {delta:.3f} "
           f"+- {se:.3f} MC, +- {se_points:.3f} over points, paired); "
           f"q* objective first/last step {gaps.local.objective_trace[0]:.3f} / "
           f"{gaps.local.objective_trace[-1]:.3f}")
