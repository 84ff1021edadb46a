"""A small grid end to end through the CLI: table rows, figures and report exist, and the
numbers in the table are those of a direct call of each method."""

import json

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from experiments.cells import Cell
from experiments.cli import main
from experiments.mixtures import precisions_from_covariances
from experiments.problem import build_problem
from experiments.store import ResultStore

# one worker computes this module's shared fits (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_end_to_end")

GRID = """
title = "end-to-end test"
[[grid]]
datasets = [{name = "generated", n = 120, d = 2, k = 2}]
n_components = [2]
methods = ["em", "map_em", "hard_em", "sklearn_em", "sklearn_vb"]
[[grid]]
datasets = [{name = "generated", n = 120, d = 2, k = 2}]
n_components = [1, 3]
methods = ["em"]
[[grid]]
datasets = [{name = "poisson_two_rates", n = 150}]
n_components = [2]
methods = ["em", "map_em", "sklearn_em"]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    (d / "grid.toml").write_text(GRID)
    out = d / "out"
    assert main(["run", "--config", str(d / "grid.toml"), "--out", str(out),
                 "--no-progress"]) == 0
    return out


def _cell(row):
    return Cell(row["dataset"], row["model"], int(row["n_components"]), row["method"],
                int(row["seed"]), row["covariance_type"] if isinstance(row["covariance_type"], str)
                else "", json.loads(row["dataset_params"]), json.loads(row["method_options"]),
                json.loads(row["prior"]), float(row["held_out_fraction"]))


def _row(table, dataset, method, k):
    sel = table[(table["dataset"] == dataset) & (table["method"] == method)
                & (table["n_components"] == k)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_table_has_one_ok_row_per_cell(run):
    table = ResultStore(run).read_table()
    assert len(table) == 5 + 2 + 2  # sklearn_em skipped for the Poisson data
    assert (table["status"] == "ok").all()
    assert table["key"].is_unique
    for key in table["key"]:
        assert (run / "cells" / key / "fit.npz").is_file()
    vb = _row(table, "generated", "sklearn_vb", 2)
    assert np.isfinite(vb["posterior_sd_means"]) and np.isfinite(vb["sklearn_vb_lower_bound"])
    assert np.isnan(vb["elbo_em"]) and np.isnan(vb["elbo_vi"])  # never two quantities in a column


def test_numbers_match_a_direct_call_of_the_method(run):
    from em_reference import GaussianMixtureEM, PoissonMixtureEM

    table = ResultStore(run).read_table()
    row = _row(table, "generated", "em", 2)
    problem = build_problem(_cell(row))
    init = problem.init
    opts = json.loads(row["method_options"])
    acc = None if opts["acceleration"] == "none" else opts["acceleration"]
    kw = dict(covariance_type="full", tol=opts["tol"], max_iter=opts["max_iter"],
              reg_covar=opts["reg_covar"], weights_init=init["weights"], means_init=init["means"],
              precisions_init=precisions_from_covariances(init["covariances"], "full"))
    X, n = problem.X_train, len(problem.X_train)
    em = GaussianMixtureEM(2, acceleration=acc, **kw).fit(X)
    assert row["log_likelihood_train"] == pytest.approx(em.score(X) * n, rel=1e-9)
    # lower_bound_ counts EM's reg_covar regulariser; log_likelihood_ is the likelihood alone
    assert row["log_likelihood_train"] == pytest.approx(em.log_likelihood_, rel=1e-9)
    assert row["log_likelihood_test"] == pytest.approx(em.score(problem.X_test) * len(
        problem.X_test), rel=1e-9)
    assert row["bic"] == pytest.approx(em.bic(X), rel=1e-9)
    assert row["icl"] == pytest.approx(em.icl(X), rel=1e-9)
    assert row["n_steps"] == em.n_iter_

    assert row["gradient_norm"] == pytest.approx(em.gradient_norm_, rel=1e-9)
    assert row["fit_status"] == ("ok" if em.converged_ else "not_converged")
    map_em = GaussianMixtureEM(2, prior="default", acceleration=acc, **kw).fit(X)
    log_prior = float(map_em.prior_.log_prob({"weights": map_em.weights_, "means": map_em.means_,
                                              "covariances": map_em.covariances_}))
    assert _row(table, "generated", "map_em", 2)["log_joint"] == pytest.approx(
        map_em.log_likelihood_ + log_prior, rel=1e-9)
    hard = GaussianMixtureEM(2, assignment="hard", **kw).fit(X)
    one_hot = np.eye(2)[hard.predict(X)]  # hard EM's own q (its objective adds reg_covar's)
    assert _row(table, "generated", "hard_em", 2)["elbo_em"] == pytest.approx(
        float(hard.elbo_em(X, one_hot)), rel=1e-9)

    sk_opts = json.loads(_row(table, "generated", "sklearn_em", 2)["method_options"])
    sk = GaussianMixture(2, tol=sk_opts["tol"], max_iter=sk_opts["max_iter"], reg_covar=sk_opts[
        "reg_covar"], weights_init=init["weights"], means_init=init["means"],
        precisions_init=precisions_from_covariances(init["covariances"], "full")).fit(X)
    assert _row(table, "generated", "sklearn_em", 2)["log_likelihood_train"] == pytest.approx(
        sk.score(X) * n, rel=1e-9)

    prow = _row(table, "poisson_two_rates", "em", 2)
    pp = build_problem(_cell(prow))
    pem = PoissonMixtureEM(2, tol=opts["tol"], max_iter=opts["max_iter"], acceleration=acc,
                           weights_init=pp.init["weights"], rates_init=pp.init["rates"]).fit(
        pp.X_train)
    assert prow["log_likelihood_train"] == pytest.approx(pem.lower_bound_, rel=1e-9)


def test_figures_and_self_contained_report(run, capsys):
    assert main(["report", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "report.html" in printed and str(run.resolve()) in printed
    figs = run / "figures"
    for stem in ("ellipses_generated", "certainty_generated", "traces_generated",
                 "estimates_generated", "elbo_comparison", "model_selection_em",
                 "em_decomposition", "poisson_poisson_two_rates"):
        assert (figs / f"{stem}.png").stat().st_size > 1000, stem
        assert (figs / f"{stem}.pdf").stat().st_size > 1000, stem
    md = (run / "report.md").read_text()
    html = (run / "report.html").read_text()
    for text in ("Setup", "Objectives and how they relate", "Results", "elbo_vi", "Figure 1"):
        assert text in md and text in html
    index = json.loads((figs / "index.json").read_text())
    n_figures = len(index)
    # set for print: one or two journal columns wide, no text under 8 pt at that width
    assert {f["width_in"] for f in index} <= {3.5, 7.0}
    small = [(f["stem"], f["min_text_pt"]) for f in index if not f["min_text_pt"] >= 8]
    assert not small, small
    # no text over other text or past the figure's edge
    clashing = {f["stem"]: f["text_clashes"] for f in index if f["text_clashes"]}
    assert not clashing, clashing
    # no legend over a panel's lines, points or bars
    covering = {f["stem"]: f["legends_over_data"] for f in index if f["legends_over_data"]}
    assert not covering, covering
    assert html.count("src='data:image/png;base64,") == n_figures >= 7
    assert "src='figures" not in html and 'src="' not in html  # nothing outside the file


NUMPYRO_GRID = """
[methods.map]
num_steps = 300
[methods.nuts]
num_warmup = 100
num_samples = 100
[[grid]]
datasets = [{name = "generated", n = 100, d = 1, k = 2}]
n_components = [2]
methods = ["map", "nuts"]
"""


def test_numpyro_methods_through_the_cli_match_a_direct_call(write_config, tmp_path,
                                                           require_models):
    require_models("fit_map", "fit_nuts")  # fit_vi: see test_readme_example.py
    import arviz as az
    import models

    out = tmp_path / "out"
    assert main(["run", "--config", str(write_config(NUMPYRO_GRID)), "--out", str(out),
                 "--no-progress"]) == 0
    store = ResultStore(out)
    table = store.read_table().set_index("method")
    assert (table["status"] == "ok").all()
    row = table.loc["map"]
    problem = build_problem(_cell(row.rename(None).to_dict() | {"method": "map"}))
    direct = models.fit_map(models.gaussian_mixture, problem.X_train, 2, covariance_type="full",
                            prior=problem.prior, init=problem.init, seed=0, num_steps=300,
                            learning_rate=0.01, polish=True)
    # the suite's log joint (scipy densities + em_reference's prior) is MAP's own objective
    assert row["log_joint"] == pytest.approx(direct.objective_trace[-1], rel=1e-8)
    params = store.load_arrays(row["key"])
    for name, value in direct.params.items():
        np.testing.assert_allclose(params[f"param/{name}"], value, rtol=1e-8)
    r = table.loc["nuts"]
    assert np.isfinite(r["posterior_sd_means"]) and r["posterior_sd_means"] > 0
    idata = az.from_netcdf(out / "cells" / r["key"] / "posterior.nc")
    assert "posterior" in idata.groups()
    assert np.isnan(table.loc["nuts", "elbo_vi"]) and np.isfinite(table.loc["nuts", "r_hat_max"])


def _chromium_launcher():
    """(playwright's sync_playwright, launch kwargs) for a headless Chromium, or a skip that
    says what is missing: the playwright package (the test extra), or a browser (Debian's
    ``chromium``, ``MIXBENCH_CHROMIUM=/path``, or one ``playwright install chromium`` put in
    place)."""
    import os
    import shutil

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"]
    path = os.environ.get("MIXBENCH_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    return sync_playwright, {"args": args, **({"executable_path": path} if path else {})}


def test_report_loads_in_a_browser_with_every_image_and_caption(run):
    """The report as a reader's browser shows it: every <img> decoded (naturalWidth > 0),
    every figure with its numbered caption, as many figures as the index lists."""
    sync_playwright, launch = _chromium_launcher()
    if not (run / "report.html").exists():
        assert main(["report", str(run)]) == 0
    n_index = len(json.loads((run / "figures" / "index.json").read_text()))
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(**launch)
        except Exception as err:  # no browser binary: playwright says which one it looked for
            pytest.skip(f"no headless Chromium could be started: {str(err).splitlines()[0]}")
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((run / "report.html").resolve().as_uri(), wait_until="load")
            images = page.evaluate(
                "() => Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
            figures = page.evaluate(
                "() => Array.from(document.querySelectorAll('figure')).map(f => "
                "[f.querySelectorAll('img').length, "
                "(f.querySelector('figcaption') || {innerText: ''}).innerText])")
        finally:
            browser.close()
    assert not errors
    assert len(images) == len(figures) == n_index >= 7
    missing = [alt for alt, complete, width in images if not (complete and width > 0)]
    assert not missing, f"images that did not load: {missing}"
    for number, (n_img, caption) in enumerate(figures, start=1):
        assert n_img == 1 and caption.startswith(f"Figure {number}.")
        assert len(caption) > len(f"Figure {number}.") + 20, caption  # a caption, not a label
