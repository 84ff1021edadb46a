"""A printer for the VAE benchmark scripts: every line goes to stdout and, flushed at once, to
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
