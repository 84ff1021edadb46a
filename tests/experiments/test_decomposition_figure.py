"""The decomposition figure (PRML fig. 9.14) is drawn from the em rows' stored numbers: one
panel per model, and its caption quotes them."""

import json

import pandas as pd

from experiments.figures.decomposition import decomposition_figure, decomposition_rows


def _row(model, dataset, k, ll0, seed=0):
    d = {"log_likelihood": [ll0, ll0 + 3.0, ll0 + 3.5], "elbo": [ll0 + 2.0, ll0 + 3.25],
         "kl": [1.0, 0.25]}
    return {"method": "em", "model": model, "dataset": dataset, "n_components": k,
            "seed": seed, "em_decomposition": json.dumps(d)}


def test_one_row_per_model_at_the_smallest_k_of_the_first_dataset(tmp_path):
    ok = pd.DataFrame([_row("gaussian_mixture", "iris", 3, -200.0),
                       _row("gaussian_mixture", "blobs", 1, -100.0),   # K=1: nothing to split
                       _row("gaussian_mixture", "blobs", 3, -150.0),
                       _row("gaussian_mixture", "blobs", 2, -120.0, seed=1),
                       _row("gaussian_mixture", "blobs", 2, -125.0, seed=0),
                       _row("poisson_mixture", "counts", 2, -50.0),
                       {"method": "map_em", "model": "poisson_mixture", "dataset": "a",
                        "n_components": 2, "seed": 0, "em_decomposition": None}])
    chosen = decomposition_rows(ok)
    assert [(r["model"], r["dataset"], r["n_components"], r["seed"]) for r, _ in chosen] == [
        ("gaussian_mixture", "blobs", 2, 0), ("poisson_mixture", "counts", 2, 0)]
    info = decomposition_figure(ok, tmp_path)
    assert info.png.stat().st_size > 1000 and info.pdf.stat().st_size > 1000
    # M-step gain = elbo - log p(X | theta_t) = 2, E-step = kl = 1 at t = 0
    assert "iteration 0 gains 2 nats in the M-step and 1 in the E-step" in info.caption
    assert "from -125.00 to -121.50 in 2 iterations" in info.caption
    assert info.width_in == 7.0 and info.min_text_pt >= 8


def test_no_figure_without_decompositions(tmp_path):
    assert decomposition_figure(pd.DataFrame({"method": ["em"], "model": ["m"]}),
                                tmp_path) is None
