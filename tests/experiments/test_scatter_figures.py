"""The ellipse figures: equal scales only where the data allow them, and one panel per
covariance type where a dataset was fitted under several."""

import json

import numpy as np
import pandas as pd

from experiments.datasets import load_dataset
from experiments.figures.scatter import covariance_types_figure, equal_scales
from experiments.store import ResultStore

PARAMS = {"n": 200, "d": 2, "k": 2}


def test_equal_scales_need_one_unit_and_comparable_ranges():
    ds = load_dataset("generated", **PARAMS)
    assert equal_scales(ds, ds.X)
    faithful = load_dataset("faithful")  # minutes both, 3.5 against 53 min of range
    assert not equal_scales(faithful, faithful.X)


def _row(ct, key):
    return {"key": key, "method": "em", "model": "gaussian_mixture", "dataset": "generated",
            "dataset_params": json.dumps(PARAMS), "held_out_fraction": 0.2,
            "n_components": 2, "covariance_type": ct, "seed": 0, "status": "ok",
            "fit_status": "ok" if ct != "diag" else "not_converged"}


def test_one_panel_per_covariance_type_and_uncertified_ones_named(tmp_path):
    store = ResultStore(tmp_path / "run")
    covs = {"full": np.stack([np.eye(2), 2 * np.eye(2)]), "diag": np.ones((2, 2)),
            "spherical": np.array([1.0, 3.0])}
    rows = []
    for ct, c in covs.items():
        row = _row(ct, f"k{ct}")
        store.write(row, arrays={"aligned/weights": np.array([0.5, 0.5]),
                                 "aligned/means": np.array([[0.0, 0.0], [3.0, 3.0]]),
                                 "aligned/covariances": c})
        rows.append(row)
    rows.append(_row("full", "other") | {"n_components": 3})  # a lone type: no figure
    infos = covariance_types_figure(store, pd.DataFrame(rows), tmp_path / "fig")
    assert len(infos) == 1
    info = infos[0]
    assert info.stem == "ellipses_covariance_types_generated"
    assert "(full, diag, spherical)" in info.caption
    assert "em (not_converged)" in info.caption and "Equal scales" in info.caption
    assert info.width_in == 7.0 and info.min_text_pt >= 8
    assert covariance_types_figure(store, pd.DataFrame(rows[:1]), tmp_path / "f2") is None
