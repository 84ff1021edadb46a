"""The report's Summary (experiments/summary.py) on fabricated rows with known differences."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments import summary
from experiments.summary import SAME_OPTIMUM_TOL, SAME_PARAMS_TOL

NAN = float("nan")


def row(dataset, method, k, ll, test, *, model="gaussian_mixture", cov="full", n=100,
        n_test=25, d=2, status="ok", **extra):
    """One finished row of the results table (only the columns the summary reads)."""
    key = f"{dataset}-{model}-{k}-{method}"
    return {"key": key, "dataset": dataset, "dataset_params": "{}", "model": model,
            "model_options": "{}", "n_components": NAN if k is None else k,
            "covariance_type": cov, "seed": 0, "held_out_fraction": 0.2, "data_hash": "h",
            "method": method, "method_options": "{}", "prior": "{}", "status": "ok",
            "error": "", "fit_status": status, "n_train": n, "n_test": n_test,
            "n_features": d, "log_likelihood_train": ll,
            "log_likelihood_test_per_point": test, **extra}


def fabricated_rows() -> list[dict]:
    """Two datasets.

    alpha (N=100, D=2, gaussian_mixture full, K=1..3):
      K=2: em -300; map_em 5e-7 and sklearn_em 2e-7 nats per sample below (RMSE vs EM 2e-4,
      5e-4: the same optimum); vi_mean_field, vi_full_rank, nuts 5e-3, 3e-3, 2e-3 below.
      K=3: sklearn_em has em's log-likelihood but RMSE vs EM 0.1 (not the same optimum);
      map_em not_converged, with a BIC lower than any certified one (must be left out).
      BIC of em: 620, 612, 615 (K=2); AIC 615, 605, 600 (K=3); ICL 625, 611, 630 (K=2).
    beta (N=200, D=1, poisson_mixture, K=2, and a VAE without K): em, vi_mean_field, nuts
      with log_evidence -405; the VAE's rows have held-out log-likelihoods only.
    """
    a = "alpha"
    rows = [
        row(a, "em", 1, -350.0, -3.6, bic=620.0, aic=615.0, icl=625.0,
            rmse_means_vs_em=0.0),
        row(a, "sklearn_em", 1, -350.0, -3.6, rmse_means_vs_em=0.0),
        row(a, "map_em", 1, -350.2, -3.6, bic=630.0, aic=629.0, icl=631.0,
            rmse_means_vs_em=0.01),
        row(a, "em", 2, -300.0, -3.0, bic=612.0, aic=605.0, icl=611.0,
            rmse_means_vs_em=0.0, rmse_weights_vs_em=0.0),
        row(a, "map_em", 2, -300.00005, -3.0, bic=625.0, aic=620.0, icl=626.0,
            rmse_means_vs_em=2e-4, rmse_weights_vs_em=1e-4),
        row(a, "sklearn_em", 2, -300.00002, -3.0, rmse_means_vs_em=5e-4,
            rmse_weights_vs_em=3e-4),
        row(a, "vi_mean_field", 2, -300.5, -3.1, elbo_vi=-310.0, elbo_vi_se=0.1,
            rmse_means_vs_em=0.05, rmse_weights_vs_em=0.02),
        row(a, "vi_full_rank", 2, -300.3, -3.05, elbo_vi=-308.0, elbo_vi_se=0.1,
            rmse_means_vs_em=0.03),
        row(a, "nuts", 2, -300.2, -2.95, rmse_means_vs_em=0.02),
        row(a, "em", 3, -295.0, -3.2, bic=615.0, aic=600.0, icl=630.0,
            rmse_means_vs_em=0.0),
        row(a, "sklearn_em", 3, -295.0, -3.2, rmse_means_vs_em=0.1),
        row(a, "map_em", 3, -296.0, -3.3, status="not_converged", bic=500.0, aic=500.0,
            icl=500.0, rmse_means_vs_em=0.2),
    ]
    b = dict(model="poisson_mixture", cov="", n=200, n_test=50, d=1)
    rows += [
        row("beta", "em", 2, -400.0, -2.05, bic=820.0, **b),
        row("beta", "vi_mean_field", 2, -401.0, -2.04, elbo_vi=-410.0, elbo_vi_se=0.2, **b),
        row("beta", "nuts", 2, -400.5, -2.045, log_evidence=-405.0, **b),
        row("beta", "vae", None, NAN, -1.9, model="vae", cov="", n=200, n_test=50, d=1),
        row("beta", "iwae", None, NAN, -1.95, model="vae", cov="", n=200, n_test=50, d=1),
    ]
    return rows


@pytest.fixture
def df():
    return pd.DataFrame(fabricated_rows())


def by_start(sentences, start):
    """The one sentence that starts with ``start`` (VI bound sentences aside)."""
    found = [s for s in sentences if s.startswith(start) and "tightest VI bound" not in s]
    assert len(found) == 1, (start, sentences)
    return found[0]


def test_same_optimum_groups_by_log_likelihood_and_parameters(df):
    s = summary.dataset_sentences(df, "alpha")
    k2 = by_start(s, "K=2:")
    assert k2.startswith("K=2: `map_em`, `sklearn_em` reach the same optimum as `em` "
                         f"(train log-likelihood within {SAME_OPTIMUM_TOL:g} nats per sample "
                         f"and every parameter RMSE vs EM, where stored, at most "
                         f"{SAME_PARAMS_TOL:g})")
    # the others, with their differences from em in nats per sample / per point
    assert "`vi_mean_field` train -5.00e-03 nats per sample, held-out -1.00e-01 nats per " \
           "point, RMSE vs EM means 0.05, weights 0.02" in k2
    assert "`vi_full_rank` train -3.00e-03 nats per sample, held-out -5.00e-02" in k2
    assert "`nuts` train -2.00e-03 nats per sample, held-out +5.00e-02" in k2
    # K=3: sklearn_em matches em's log-likelihood but not its parameters; the uncertified
    # map_em is not compared at all
    k3 = by_start(s, "K=3:")
    assert k3.startswith("K=3: no other certified fit reaches the optimum of `em`")
    assert "`sklearn_em` train +0.00e+00 nats per sample" in k3 and "means 0.1" in k3
    assert "map_em" not in k3
    k1 = by_start(s, "K=1:")
    assert k1.startswith("K=1: `sklearn_em` reaches the same optimum as `em`")
    assert "`map_em` train -2.00e-03 nats per sample" in k1


def test_groups_directly():
    rows = fabricated_rows()
    k2 = [r for r in rows if r["dataset"] == "alpha" and r["n_components"] == 2]
    ref = next(r["key"] for r in k2 if r["method"] == "em")
    groups = summary.optimum_groups(k2, ref)
    assert [sorted(r["method"] for r in g) for g in groups] == [
        ["em", "map_em", "sklearn_em"], ["nuts"], ["vi_full_rank"], ["vi_mean_field"]]
    # without an EM reference the best train log-likelihood leads and RMSEs are not used
    no_em = [r for r in k2 if r["method"] != "em"]
    groups = summary.optimum_groups(no_em, None)
    assert [sorted(r["method"] for r in g) for g in groups][0] == ["map_em", "sklearn_em"]
    assert groups[0][0]["method"] == "sklearn_em"
    # just past the tolerance (2e-6 nats per sample below em): an optimum of its own
    moved = [{**r, "log_likelihood_train": -300.0002} if r["method"] == "map_em" else r
             for r in k2]
    assert [sorted(r["method"] for r in g) for g in summary.optimum_groups(moved, ref)][:2] \
        == [["em", "sklearn_em"], ["map_em"]]


def test_uncertified_fits_are_named(df):
    s = summary.dataset_sentences(df, "alpha")
    assert by_start(s, "Not certified") == (
        "Not certified (1 of 12 fits; named, not compared): `map_em` (K=3) not_converged.")
    assert not [x for x in summary.dataset_sentences(df, "beta")
                if x.startswith("Not certified")]


def test_tightest_bound_and_its_gap(df):
    alpha = summary.dataset_sentences(df, "alpha")
    bound = [x for x in alpha if "tightest VI bound" in x]
    assert len(bound) == 1
    text = bound[0]
    assert text.startswith("K=2: tightest VI bound: `vi_full_rank`, elbo_vi -308.00 ± 0.1; "
                           "`vi_mean_field` 2 nats lower")
    # no log_evidence in alpha: the gap is to em's -300 (the highest certified train ll)
    assert "highest certified train log-likelihood (-300.00, `em`" in text
    assert "`vi_full_rank` 8 nats (8.00e-02 per sample), `vi_mean_field` 10 nats" in text
    beta = [x for x in summary.dataset_sentences(df, "beta") if "tightest VI bound" in x]
    assert len(beta) == 1 and "gap to log_evidence -405.00" in beta[0]
    assert "`vi_mean_field` 5 nats (2.50e-02 per sample)" in beta[0]


def test_criteria_pick_k_from_certified_rows_only(df):
    s = summary.dataset_sentences(df, "alpha")
    assert by_start(s, "`em`:") == ("`em`: BIC picks K=2, AIC picks K=3, ICL picks K=2, of "
                                     "K = 1, 2, 3 (lowest is best).")
    # map_em's K=3 has the lowest BIC of all but is not certified
    assert by_start(s, "`map_em`:") == ("`map_em`: BIC picks K=2, AIC picks K=2, ICL picks "
                                        "K=2, of K = 1, 2 (lowest is best); K=3 left out (not "
                                        "certified).")
    # beta has one K: no selection sentence
    assert not [x for x in summary.dataset_sentences(df, "beta") if "picks" in x]


def test_models_without_components_are_compared_on_held_out_data(df):
    s = summary.dataset_sentences(df, "beta")
    assert ("vae: held-out log-likelihood per point (no train log-likelihood): `vae` -1.9, "
            "`iwae` -1.95.") in s
    # the model shows in the labels since beta holds two models
    assert any(x.startswith("poisson_mixture, K=2: ") for x in s)


def test_headline_table(df):
    header, body = summary.headline_table(df)
    assert header == summary.TABLE_HEADER
    table = {r[0]: dict(zip(header, r, strict=True)) for r in body}
    a, b = table["alpha"], table["beta"]
    assert a["n train / held-out"] == "100 / 25" and a["D"] == "2" and a["K"] == "1-3"
    assert a["best held-out log-lik / point"] == "-2.95 (nuts, K=2)"
    assert a["train log-lik spread / sample"] == f"{5e-3:.2e}"  # K=2: em - vi_mean_field
    assert a["uncertified fits"] == "1 of 12" and a["K by BIC"] == "2 (em)"
    assert b["n train / held-out"] == "200 / 50" and b["K"] == "2"
    assert b["best held-out log-lik / point"] == "-1.9 (vae)"
    assert b["train log-lik spread / sample"] == f"{1 / 200:.2e}"
    assert b["uncertified fits"] == "0 of 5" and b["K by BIC"] == ""
    h = summary.headline_row(df, "alpha")
    assert h["spread"] == pytest.approx(5e-3) and h["bic_k"] == [2]


def test_missing_columns_and_empty_tables_do_not_crash():
    bare = pd.DataFrame([{"key": "x", "dataset": "d", "model": "m", "method": "em",
                          "status": "ok"}, {"key": "y", "dataset": "d", "model": "m",
                                            "method": "vi_mean_field", "status": "ok"}])
    assert summary.dataset_sentences(bare, "d") == []
    header, body = summary.headline_table(bare)
    assert body == [["d", " / ", "", "", "", "", "0 of 2", ""]]
    assert summary.headline_table(pd.DataFrame()) == (summary.TABLE_HEADER, [])

    class Recorder:
        def __init__(self):
            self.items = []

        def __getattr__(self, kind):
            return lambda *a: self.items.append((kind, a))

    rec = Recorder()
    summary.add_summary(rec, pd.DataFrame())
    assert rec.items == [("h", (2, "Summary")), ("p", ("No finished cells: nothing to "
                                                        "summarise.",))]


def test_write_report_puts_the_summary_before_the_results(tmp_path, monkeypatch):
    from experiments import report
    from experiments.store import ResultStore

    store = ResultStore(tmp_path)
    failed = {**row("beta", "map", 2, NAN, NAN, model="poisson_mixture", cov=""),
              "status": "failed", "error": "boom", "fit_status": NAN}
    for r in fabricated_rows() + [failed]:
        store.write({**r, "config_key": r["key"], "code_version": "test"})
    # the figures are not what this test is about (and fabricated rows have no arrays)
    monkeypatch.setattr(report, "make_figures", lambda *a, **k: [])
    html = report.write_report(tmp_path).read_text()
    md = (tmp_path / "report.md").read_text()
    setup, summ, results = (md.index(f"\n## {h}\n") for h in ("Setup", "Summary", "Results"))
    assert setup < summ < results
    section = md[summ:results]
    assert "| alpha | 100 / 25 | 2 | 1-3 | -2.95 (nuts, K=2) | 5.00e-03 | 1 of 12 | 2 (em) |" \
        in section
    assert "### alpha: findings" in section and "### beta: findings" in section
    assert ("- Not certified (1 of 12 fits; named, not compared): `map_em` (K=3) "
            "not_converged.") in section
    assert "- 1 cell(s) failed (listed under Failed cells)." in section
    assert "<h2>Summary</h2>" in html and "<code>vi_full_rank</code>" in html


def test_criteria_picks_are_merged_over_seeds():
    # em on gamma at K=1..3 with three seeds: BIC picks K=2 in every seed; seed 2 finds a
    # better K=3 fit, so AIC picks K=3 there and K=2 elsewhere; seed 1's K=3 is not certified
    def em(k, seed, bic, aic, status="ok"):
        r = row("gamma", "em", k, -300.0, -3.0, status=status, bic=bic, aic=aic)
        return {**r, "key": f"{r['key']}-{seed}", "seed": seed}

    rows = []
    for seed in (0, 1, 2):
        rows += [em(1, seed, 620.0, 615.0), em(2, seed, 612.0, 605.0),
                 em(3, seed, 615.0, 600.0 if seed == 2 else 610.0,
                    status="not_converged" if seed == 1 else "ok")]
    s = summary.dataset_sentences(pd.DataFrame(rows), "gamma")
    picks = [x for x in s if "picks" in x]
    assert picks == ["`em`: BIC picks K=2, AIC picks K=2 (seeds 0, 1), K=3 (seed 2), of "
                     "K = 1, 2, 3 over seeds 0, 1, 2 (lowest is best); K=3 left out (not "
                     "certified) in seed 1."]
