"""The model-selection figure states each criterion's choice of K, read from the rows."""

import pandas as pd

from experiments.figures.selection import choice_text, choices_over_seeds, chosen_k, \
    selection_figure


def _rows(seed=0, values=None):
    # BIC is least at K=2, AIC at K=3, ICL at K=1 (ICL thousands of nats away from the other two)
    values = values or {1: (900.0, 890.0, 3000.0), 2: (850.0, 830.0, 3100.0),
                        3: (860.0, 820.0, 3200.0)}
    return pd.DataFrame([{"method": "em", "dataset": "d", "model": "gaussian_mixture",
                          "covariance_type": "full", "seed": seed, "n_components": k,
                          "status": "ok", "fit_status": "ok" if k != 3 else "not_converged",
                          "bic": b, "aic": a, "icl": i} for k, (b, a, i) in values.items()])


def test_choices_are_the_minima_and_the_caption_says_them(tmp_path):
    rows = _rows()
    # AIC's minimum is at K=3, whose fit is not certified: it chooses among K=1, 2
    assert [chosen_k(rows, c) for c in ("bic", "aic", "icl")] == [2, 2, 1]
    info = selection_figure(rows, tmp_path)
    assert "d: BIC K=2, AIC K=2, ICL K=1." in info.caption
    assert "d K=3 seed 0 (not_converged)" in info.caption
    assert info.width_in == 3.5 and info.min_text_pt >= 8 and info.text_clashes == ()


def test_three_panels_share_a_page_without_clashing_text(tmp_path):
    rows = pd.concat([_rows().assign(dataset=name) for name in
                      ("faithful", "london_deaths", "three_cluster_diag")])
    info = selection_figure(rows, tmp_path)
    assert info.width_in == 7.0 and info.min_text_pt >= 8
    assert info.text_clashes == ()


def test_seeds_that_disagree_are_counted(tmp_path):
    # seed 1 reaches a better K=3 fit (certified there): its BIC chooses K=3
    other = _rows(seed=1, values={1: (900.0, 890.0, 3000.0), 2: (850.0, 830.0, 3100.0),
                                  3: (840.0, 815.0, 3200.0)})
    other["fit_status"] = "ok"
    rows = pd.concat([_rows(seed=0), other, _rows(seed=2).assign(fit_status="ok")])
    assert choices_over_seeds(rows, "bic") == {2: 2, 3: 1}
    assert choices_over_seeds(rows, "icl") == {1: 3}
    assert choice_text("BIC", {2: 2, 3: 1}) == "BIC K=2 (2 of 3 seeds), K=3 (1 of 3)"
    assert choice_text("BIC", {2: 2, 3: 1}, compact=True) == "BIC K=2 (2/3)"
    info = selection_figure(rows, tmp_path)
    assert "seeds 0, 1, 2" in info.caption
    assert "d: BIC K=2 (2 of 3 seeds), K=3 (1 of 3)" in info.caption
    assert "ICL K=1" in info.caption
