"""The Dask path: a small grid on a real LocalCluster gives the table of the local path."""

import pandas as pd
import pytest

from experiments.cli import main
from experiments.store import ResultStore

GRID = """
[[grid]]
datasets = [{name = "generated", n = 120, d = 2, k = 2}]
n_components = [2]
methods = ["em", "sklearn_em"]
[[grid]]
datasets = [{name = "poisson_two_rates", n = 150}]
n_components = [2]
methods = ["em", "map_em"]
"""


def test_local_cluster_gives_the_local_table(write_config, tmp_path, comparable):
    distributed = pytest.importorskip("distributed")
    cfg = write_config(GRID)
    local, remote = tmp_path / "local", tmp_path / "dask"
    assert main(["run", "--config", str(cfg), "--out", str(local), "--no-progress"]) == 0
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        assert main(["run", "--config", str(cfg), "--out", str(remote), "--no-progress",
                     "--scheduler", cluster.scheduler_address]) == 0
    a, b = ResultStore(local).read_table(), ResultStore(remote).read_table()
    assert len(a) == 4 and (b["status"] == "ok").all()
    pd.testing.assert_frame_equal(comparable(a), comparable(b))
    # artefacts were written by this process, from what the workers sent back
    assert all((remote / "cells" / k / "fit.npz").is_file() for k in b["key"])
