"""Issue 18 (items 3-4) on the grid: the cavi, vi_low_rank and evidence methods, kl_gap from
the store, and the report's bounds-against-the-evidence section and figure."""

import json
import math

import numpy as np
import pytest
from sklearn.utils import check_random_state

from experiments.cells import Cell
from experiments.execute import fit_columns, fit_method, identity_columns, run_cell
from experiments.methods import METHODS
from experiments.problem import Problem, build_problem

TINY_2D = {"n": 60, "d": 2, "k": 2}   # 48 training points
TINY_1D = {"n": 40, "d": 1, "k": 1}   # 32 training points, one component


def test_cavi_row_equals_a_direct_cavi_fit_from_the_shared_start_and_prior():
    from em_reference.cavi import GaussianMixtureCAVI
    from em_reference.initialization import initial_responsibilities
    from experiments.mixtures.common import kmeans_labels

    cell = Cell("generated", "gaussian_mixture", 2, "cavi", seed=3, covariance_type="full",
                dataset_params=TINY_2D)
    out = run_cell(cell)
    row = out.row
    assert row["status"] == "ok", row.get("error")
    problem = build_problem(cell)
    X = problem.X_train
    # the estimator's k-means start is the partition the shared initialisation was built from
    start = initial_responsibilities(X, 2, "kmeans", check_random_state(3), np.ones(len(X)))
    np.testing.assert_array_equal(start.argmax(1), kmeans_labels(X, 2, 3))
    est = GaussianMixtureCAVI(2, covariance_type="full", tol=1e-8, max_iter=10_000,
                              init_params="kmeans", prior=problem.prior, random_state=3).fit(X)
    assert row["elbo_vi"] == pytest.approx(est.lower_bound_, rel=1e-10, abs=1e-10)
    assert row["elbo_vi_se"] == 0.0 and row["objective_name"] == "elbo_vi"
    assert row["n_steps"] == est.n_iter_ and row["converged"] == est.converged_
    assert row["fit_status"] == ("ok" if est.converged_ else "not_converged")
    np.testing.assert_allclose(out.arrays["trace"], est.lower_bounds_, rtol=1e-10, atol=1e-10)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(out.arrays[f"param/{name}"], getattr(est, name + "_"),
                                   rtol=1e-10, atol=1e-10)


def test_poisson_cavi_equals_a_direct_fit_and_lies_below_the_exact_evidence():
    from em_reference.cavi import PoissonMixtureCAVI
    from experiments.models_registry import MODELS
    from experiments.problem import build_prior
    from models.evidence_exact import mixture_log_evidence

    x = np.array([0, 1, 1, 2, 0, 3, 1, 7, 9, 6, 8, 10, 7, 5], float)[:, None]  # 2^14 labels
    model = MODELS["poisson_mixture"]
    prior = build_prior(model, x, 2, "", None)
    problem = Problem(Cell("tiny", model.name, 2, "cavi", seed=1), None, model, x, x[:0],
                      None, None, prior, model.initial_values(x, 2, "", 1))
    fit = fit_method(problem, "cavi", {})
    est = PoissonMixtureCAVI(2, tol=1e-8, max_iter=10_000, init_params="kmeans", prior=prior,
                             random_state=1).fit(x)
    assert fit.elbo == pytest.approx(est.lower_bound_, rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(fit.params["rates"], est.rates_, rtol=1e-10)
    # an ELBO bounds the evidence, here exact by enumerating every assignment
    exact = mixture_log_evidence(x, 2, prior)
    assert fit.elbo < exact
    assert exact - fit.elbo < 5.0  # and not absurdly far below it (log 2! = 0.69 for K = 2)


def test_bernoulli_cavi_equals_a_direct_fit_and_lies_below_the_exact_evidence():
    from em_reference.cavi import BernoulliMixtureCAVI
    from experiments.models_registry import MODELS
    from experiments.problem import build_prior
    from models.evidence_exact import mixture_log_evidence

    rng = np.random.default_rng(0)
    protos = np.array([[1, 1, 0, 0], [0, 0, 1, 1]])
    z = np.repeat([0, 1], 6)
    x = np.where(rng.random((12, 4)) < 0.85, protos[z], 1 - protos[z]).astype(float)
    model = MODELS["bernoulli_mixture"]
    prior = build_prior(model, x, 2, "", None)
    problem = Problem(Cell("tiny", model.name, 2, "cavi", seed=1), None, model, x, x[:0],
                      None, None, prior, model.initial_values(x, 2, "", 1))
    fit = fit_method(problem, "cavi", {})
    est = BernoulliMixtureCAVI(2, tol=1e-8, max_iter=10_000, init_params="kmeans",
                               prior=prior, random_state=1).fit(x)
    assert fit.elbo == pytest.approx(est.lower_bound_, rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(fit.params["probs"], est.probs_, rtol=1e-10)
    exact = mixture_log_evidence(x, 2, prior)  # 2^12 assignments
    assert exact - 5.0 < fit.elbo < exact


def test_evidence_matches_the_closed_form_of_a_conjugate_one_component_problem():
    from models.evidence_exact import gaussian_log_marginal

    problem = build_problem(Cell("generated", "gaussian_mixture", 1, "evidence",
                                 covariance_type="full", dataset_params=TINY_1D))
    fit = fit_method(problem, "evidence", {"num_warmup": 300, "num_samples": 500,
                                           "num_chains": 2})
    cols = fit_columns(fit)
    exact = gaussian_log_marginal(problem.X_train, problem.prior)  # Murphy 2007, NIW
    assert cols["fit_status"] == "ok" and cols["converged"]
    assert 0 < cols["log_evidence_se"] < 0.1
    assert abs(cols["log_evidence"] - exact) < 4 * cols["log_evidence_se"]
    assert math.isnan(cols["elbo_vi"])  # the evidence is no bound


def test_evidence_whose_chains_did_not_mix_is_flagged_and_never_a_reference():
    from experiments import comparisons

    problem = build_problem(Cell("generated", "gaussian_mixture", 1, "evidence",
                                 covariance_type="full", dataset_params=TINY_1D))
    # 8 draws of one chain, no more: far below the ESS target
    fit = fit_method(problem, "evidence", {"num_warmup": 20, "num_samples": 8,
                                           "max_samples": 8, "num_chains": 1})
    cols = fit_columns(fit)
    assert cols["fit_status"] == "failed_to_mix" and not cols["converged"]
    assert np.isfinite(cols["log_evidence"])
    rows = [_row("evidence", log_evidence=cols["log_evidence"],
                 log_evidence_se=cols["log_evidence_se"], fit_status=cols["fit_status"]),
            _row("vi_mean_field", elbo_vi=cols["log_evidence"] + 50.0, elbo_vi_se=0.1)]
    comparisons.add_kl_gap_columns(rows)
    assert "kl_gap" not in rows[1]  # not judged by an evidence that did not mix
    assert comparisons.uncertified_evidence(rows) == [rows[0]]


@pytest.mark.parametrize("method", ["nuts", "evidence"])
def test_nuts_step_size_and_mass_matrix_options_reach_fit_nuts(monkeypatch, method):
    """A posterior whose chains diverge at the defaults (london_deaths) needs a higher
    target acceptance or a dense mass matrix: both methods hand them to models.fit_nuts."""
    import models

    class Called(Exception):
        pass

    seen = {}

    def spy(model, *args, **kwargs):
        seen.update(kwargs)
        raise Called

    monkeypatch.setattr(models, "fit_nuts", spy)
    problem = build_problem(Cell("generated", "gaussian_mixture", 2, method,
                                 covariance_type="full", dataset_params=TINY_2D))
    with pytest.raises(Called):
        fit_method(problem, method, {"target_accept_prob": 0.95, "dense_mass": True})
    assert seen["target_accept_prob"] == 0.95 and seen["dense_mass"] is True


def test_vi_low_rank_is_fit_vi_with_the_low_rank_guide(monkeypatch):
    import models
    from models.vi_fit import GUIDES

    assert GUIDES["low_rank"].__name__ == "AutoLowRankMultivariateNormal"
    seen = {}

    def spy(model, *args, **kwargs):
        seen.update(kwargs, model=model, args=args)
        return "fit"

    monkeypatch.setattr(models, "fit_vi", spy)
    problem = build_problem(Cell("generated", "gaussian_mixture", 2, "vi_low_rank",
                                 covariance_type="full", dataset_params=TINY_2D))
    assert fit_method(problem, "vi_low_rank", {"rank": 2, "num_steps": 7}) == "fit"
    assert seen["guide"] == "low_rank" and seen["rank"] == 2 and seen["num_steps"] == 7
    assert seen["prior"] is problem.prior and seen["model"] is models.gaussian_mixture
    assert set(seen["init"]) == set(problem.init)


@pytest.mark.parametrize("method, options, guide, guide_options", [
    ("vi_dais", {"dais_steps": 8, "base_dist": "cholesky"}, "dais",
     {"K": 8, "base_dist": "cholesky"}),
    ("vi_iaf", {"num_flows": 2}, "iaf", {"num_flows": 2}),
])
def test_guide_methods_are_fit_vi_with_their_guide_and_options_from_the_shared_start(
        monkeypatch, method, options, guide, guide_options):
    import models

    seen = {}

    def spy(model, *args, **kwargs):
        seen.update(kwargs, model=model)
        return "fit"

    monkeypatch.setattr(models, "fit_vi", spy)
    problem = build_problem(Cell("generated", "gaussian_mixture", 2, method,
                                 covariance_type="full", dataset_params=TINY_2D))
    assert fit_method(problem, method, options) == "fit"
    assert seen["guide"] == guide and seen["guide_options"] == guide_options
    assert seen["prior"] is problem.prior and set(seen["init"]) == set(problem.init)


def test_laplace_row_is_a_direct_fit_laplace_from_the_shared_start_and_prior():
    import models
    from experiments.models_registry import model_call

    problem = build_problem(Cell("generated", "gaussian_mixture", 2, "laplace",
                                 covariance_type="full", dataset_params=TINY_2D))
    options = {"num_samples": 100, "elbo_particles": 200}
    row = fit_method(problem, "laplace", options)
    model, args, kwargs = model_call(problem, True)
    direct = models.fit_laplace(model, *args, seed=problem.seed,
                                init={k: np.asarray(v) for k, v in problem.init.items()},
                                **options, **kwargs)
    assert row.method == "laplace" and row.objective_name == "elbo_vi"
    assert row.status == "ok" and row.elbo == direct.elbo and row.elbo_se == direct.elbo_se
    np.testing.assert_array_equal(row.diagnostics["mode_unconstrained"],
                                  direct.diagnostics["mode_unconstrained"])


@pytest.mark.parametrize("method, options, alpha", [
    ("vi_iwae", {"num_particles": 4}, 0.0),
    ("vi_renyi", {"alpha": 0.5, "num_particles": 3, "guide": "full_rank"}, 0.5),
])
def test_renyi_rows_are_a_direct_fit_vi_on_renyis_bound_with_its_bound_as_columns(
        method, options, alpha):
    import models
    from experiments.models_registry import model_call

    problem = build_problem(Cell("generated", "gaussian_mixture", 2, method,
                                 covariance_type="full", dataset_params=TINY_2D))
    small = {"num_steps": 300, "num_samples": 50, "elbo_particles": 100}
    row = fit_method(problem, method, {**options, **small})
    model, args, kwargs = model_call(problem, True)
    direct = models.fit_vi(model, *args, seed=problem.seed, objective="renyi", alpha=alpha,
                           guide=options.get("guide", "mean_field"),
                           num_particles=options["num_particles"],
                           init={k: np.asarray(v) for k, v in problem.init.items()},
                           **small, **kwargs)
    assert row.elbo == direct.elbo and row.elbo_se == direct.elbo_se
    columns = fit_columns(row)
    assert columns["renyi_bound"] == direct.diagnostics["renyi_bound"]
    assert columns["renyi_bound_se"] == direct.diagnostics["renyi_bound_se"] > 0
    assert columns["renyi_particles"] == options["num_particles"]
    assert columns["renyi_alpha"] == alpha
    # Renyi's bound at alpha < 1 is above the ELBO of the same q
    assert columns["renyi_bound"] > row.elbo - 3 * math.hypot(row.elbo_se,
                                                              columns["renyi_bound_se"])
    with pytest.raises(ValueError, match="'alpha' must be < 1"):
        METHODS["vi_renyi"].check_options({"alpha": 1.0})
    with pytest.raises(ValueError, match="'num_particles' must be >= 2"):
        METHODS[method].check_options({"num_particles": 1})


def test_methods_all_leaves_out_the_opt_in_methods():
    from experiments.config import parse_config

    cfg = parse_config({"grid": [{"datasets": [{"name": "generated", **TINY_2D}],
                                  "n_components": [2], "methods": "all"}]})
    opt_in = {"cavi", "vi_low_rank", "vi_iaf", "vi_dais", "vi_iwae", "vi_renyi", "laplace",
              "evidence"}
    assert not opt_in & {c.method for c in cfg.cells}
    assert {c.method for c in cfg.cells} == {m for m, e in METHODS.items()
                                            if e.in_all and e.supports("gaussian_mixture")}
    named = parse_config({"grid": [{"datasets": [{"name": "generated", **TINY_2D}],
                                    "n_components": [2], "methods": sorted(opt_in)}]})
    assert {c.method for c in named.cells} == opt_in


# ---------------------------------------------------------------- kl_gap from a made-up store
def _row(method, **kw):
    base = {"status": "ok", "dataset": "d", "dataset_params": "{}", "model": "m",
            "model_options": "{}", "n_components": 2, "covariance_type": "full", "seed": 0,
            "held_out_fraction": 0.2, "data_hash": "h", "prior": '"default"', "n_train": 48,
            "method": method, "fit_status": "ok",
            "key": f"{method}-{kw.get('prior', '')}-{kw.get('fit_status', '')}"}
    return {**base, **kw}


EVIDENCE, EVIDENCE_SE = -98.0, 0.1
BOUNDS = {  # method: (elbo_vi, elbo_vi_se)
    "vi_mean_field": (-100.0, 0.05),
    "vi_low_rank": (-97.9, 0.05),      # above the evidence by 0.9 s.e.: noise, not flagged
    "vi_full_rank": (-97.0, 0.1),      # made up: 1 nat above it, 7 s.e.: a bug
    "cavi": (-99.5, 0.0),
}
TRAINED = {  # method trained on Renyi's bound: (elbo_vi, its se, renyi_bound, its se)
    "vi_iwae": (-101.0, 0.05, -98.4, 0.05),   # both below the evidence
    "vi_renyi": (-99.0, 0.05, -97.0, 0.05),   # its ELBO below, its Renyi bound 8.9 s.e. above
}


@pytest.fixture
def gap_store(tmp_path):
    """A store of made-up rows of one problem on the tiny generated data (so that the report
    can load it), one evidence row, the four bounds, sklearn_vb, and rows that must not be
    judged: a failed-to-mix evidence, a bound under another prior."""
    from experiments.store import ResultStore

    store = ResultStore(tmp_path / "out")
    cell = Cell("generated", "gaussian_mixture", 2, "evidence", covariance_type="full",
                dataset_params=TINY_2D)
    ident = identity_columns(cell)
    common = {k: ident[k] for k in ("dataset", "model", "n_components", "covariance_type",
                                     "seed", "dataset_params", "model_options", "prior",
                                     "held_out_fraction", "code_version", "data_hash")}
    common.update(n_train=48, n_test=12, n_features=2, log_likelihood_train=-95.0)

    def write(method, key, **cols):
        store.write({**common, "key": key, "config_key": key, "method": method,
                     "method_options": "{}", "status": "ok", "error": "", "fit_status": "ok",
                     **cols})

    write("evidence", "ev", log_evidence=EVIDENCE, log_evidence_se=EVIDENCE_SE)
    write("evidence", "ev-bad", log_evidence=-50.0, log_evidence_se=0.01,
          fit_status="failed_to_mix")
    for method, (elbo, se) in BOUNDS.items():
        write(method, method, elbo_vi=elbo, elbo_vi_se=se)
    for method, (elbo, se, bound, bound_se) in TRAINED.items():
        write(method, method, elbo_vi=elbo, elbo_vi_se=se, renyi_bound=bound,
              renyi_bound_se=bound_se, run_time=2.5)
    write("sklearn_vb", "skl", sklearn_vb_lower_bound=-20.0)
    write("vi_mean_field", "other-prior", elbo_vi=-10.0, elbo_vi_se=0.05,
          prior=json.dumps({"mean_precision": 0.1}))
    return store


def test_kl_gap_is_log_evidence_minus_the_bound_and_a_bound_above_it_is_flagged(gap_store):
    table = gap_store.read_table().set_index("key")
    for method, (elbo, se) in BOUNDS.items():
        assert table.loc[method, "kl_gap"] == EVIDENCE - elbo
        assert table.loc[method, "kl_gap_se"] == pytest.approx(math.hypot(EVIDENCE_SE, se))
    flagged = {m for m in BOUNDS if table.loc[m, "bound_exceeds_evidence"]}
    assert flagged == {"vi_full_rank"}
    # a q trained on Renyi's bound: kl_gap from its ELBO, renyi_gap from its trained bound,
    # flagged when either bound exceeds the evidence
    for method, (elbo, se, bound, bound_se) in TRAINED.items():
        assert table.loc[method, "kl_gap"] == EVIDENCE - elbo
        assert table.loc[method, "kl_gap_se"] == pytest.approx(math.hypot(EVIDENCE_SE, se))
        assert table.loc[method, "renyi_gap"] == pytest.approx(EVIDENCE - bound)
        assert table.loc[method, "renyi_gap_se"] == pytest.approx(math.hypot(EVIDENCE_SE,
                                                                             bound_se))
    assert not table.loc["vi_iwae", "bound_exceeds_evidence"]
    assert table.loc["vi_renyi", "bound_exceeds_evidence"]
    assert not np.isfinite(table.loc["vi_mean_field", "renyi_gap"])
    # not judged: the evidence itself, sklearn's bound without its constants, another prior
    for key in ("ev", "ev-bad", "skl", "other-prior"):
        assert not np.isfinite(table.loc[key, "kl_gap"])


def test_report_shows_kl_gap_flags_the_bug_and_draws_the_gap_figure(gap_store):
    from experiments.report import write_report

    with pytest.warns(UserWarning):  # the per-dataset figures find no stored arrays
        write_report(gap_store.root)
    md = (gap_store.root / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| K | cov | method"))
    assert "| kl_gap |" in header and "| log_evidence |" in header
    assert "## Bounds against the evidence" in md
    assert "**Bug: bound exceeds evidence**" in md and "vi_full_rank: kl_gap -1.000" in md
    assert "BUG: bound exceeds evidence by 7.1 s.e." in md and "(7.1 s.e. above)" in md
    assert md.count("bound below evidence") == 3 and "above it by 0.9 s.e.: noise" in md
    assert "| renyi_gap |" in md and "BUG: its trained (Renyi) bound exceeds the evidence" in md
    iwae = next(line for line in md.splitlines() if "| vi_iwae |" in line and "±" in line)
    assert "| 3.000 ± 0.112 | 0.400 ± 0.112 |" in iwae
    assert "`sklearn_vb` is not judged" in md and "(failed_to_mix)" in md
    # CAVI against the best NumPyro bound (vi_full_rank's -97.0) on the same log p(X)
    assert "CAVI's bound is over (z, θ)" in md
    assert "vi_full_rank is tighter than cavi by 2.500 ± 0.100 nats" in md
    assert (gap_store.root / "figures" / "kl_gaps.png").stat().st_size > 0
    assert (gap_store.root / "figures" / "kl_gaps.pdf").is_file()
    captions = json.loads((gap_store.root / "figures" / "index.json").read_text())
    (gap,) = [c["caption"] for c in captions if c["stem"] == "kl_gaps"]
    assert "linear axis" in gap and "generated vi_full_rank" in gap


def test_gap_figure_ranks_each_problems_bounds_by_gap_and_gives_their_cost(gap_store):
    from experiments import comparisons
    from experiments.figures.gaps import _label, _panels

    gaps = comparisons.kl_gaps(gap_store.read_table().to_dict("records"))
    ((_, group),) = _panels(gaps)
    assert [d["method"] for d in group] == sorted(
        [*BOUNDS, *TRAINED], key=lambda m: EVIDENCE - {**BOUNDS, **TRAINED}[m][0])
    assert _label(group[-1]) == "vi_iwae θ · 2.5 s"  # the widest gap, at the bottom
    assert _label(next(d for d in group if d["method"] == "cavi")) == "cavi (z, θ) · ? s"
    assert _label({**group[-1], "run_time": 0.0123}) == "vi_iwae θ · 0.012 s"


def test_a_plug_in_bound_method_is_judged_and_scheduled_by_its_registration(gap_store):
    from experiments import comparisons
    from experiments.methods import register_method
    from experiments.methods.registry import bound_methods
    from experiments.runner import _order

    for bad, message in (({"bound_over": "z"}, "bound_over must be"),
                         ({"cost_rank": 3}, "cost_rank must be"),
                         ({"colour": "blue"}, "colour must be None or '#rrggbb'")):
        with pytest.raises(ValueError, match=message):
            register_method("unit_test_bad", **bad)
    assert "unit_test_bad" not in METHODS

    @register_method("unit_test_bound", kind="posterior", in_all=False, bound_over="θ",
                     cost_rank=0, colour="#123456")
    def fit_bound(problem):
        raise AssertionError("never fitted here")

    try:
        assert bound_methods()["unit_test_bound"] == "θ"
        records = gap_store.read_table().to_dict("records")
        plugin = {**next(r for r in records if r["key"] == "vi_mean_field"),
                  "method": "unit_test_bound", "key": "plug", "elbo_vi": -99.0}
        (gap,) = [d for d in comparisons.kl_gaps([*records, plugin])
                  if d["method"] == "unit_test_bound"]
        assert gap["kl_gap"] == EVIDENCE + 99.0 and gap["bound_over"] == "θ"
        cells = [Cell("generated", "gaussian_mixture", 2, m, dataset_params=TINY_2D)
                 for m in ("em", "map", "unit_test_bound")]
        assert [c.method for c in _order(cells)] == ["unit_test_bound", "map", "em"]
        from experiments.figures.style import method_color, sort_methods

        assert method_color("unit_test_bound") == "#123456"
        assert sort_methods(["unit_test_bound", "evidence", "em"]) == ["em", "evidence",
                                                                        "unit_test_bound"]
    finally:
        del METHODS["unit_test_bound"]
