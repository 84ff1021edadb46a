"""The model-selection figure states each criterion's choice of K, read from the rows."""

import pandas as pd

from experiments.figures.selection import chosen_k, selection_figure


def _rows():
    # BIC is least at K=2, AIC at K=3, ICL at K=1 (ICL thousands of nats away from the other two)
    values = {1: (900.0, 890.0, 3000.0), 2: (850.0, 830.0, 3100.0), 3: (860.0, 820.0, 3200.0)}
    return pd.DataFrame([{"method": "em", "dataset": "d", "model": "gaussian_mixture",
                          "covariance_type": "full", "seed": 0, "n_components": k,
                          "status": "ok", "fit_status": "ok" if k != 3 else "not_converged",
                          "bic": b, "aic": a, "icl": i} for k, (b, a, i) in values.items()])


def test_choices_are_the_minima_and_the_caption_says_them(tmp_path):
    rows = _rows()
    # AIC's minimum is at K=3, whose fit is not certified: it chooses among K=1, 2
    assert [chosen_k(rows, c) for c in ("bic", "aic", "icl")] == [2, 2, 1]
    info = selection_figure(rows, tmp_path)
    assert "d: BIC K=2, AIC K=2, ICL K=1." in info.caption
    assert "d K=3 (not_converged)" in info.caption
    assert info.width_in == 3.5 and info.min_text_pt >= 8
