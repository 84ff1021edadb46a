"""A new mixture family registered from this test file only (no edit anywhere else): a mixture
of exponentials with its own data family, dataset, EM estimator (MLE and MAP-EM), NumPyro
model and registration, run through the grid with em, map_em, map and vi_mean_field, scored,
compared with EM at table time, and reported.
"""

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import stats
from scipy.special import gammaln, logsumexp

from experiments import (
    FAMILIES,
    Dataset,
    register_dataset,
    register_family,
    register_model,
)
from experiments.config import parse_config
from experiments.datasets import DATASETS
from experiments.models_registry import MODELS
from experiments.report import write_report
from experiments.runner import run_grid
from experiments.store import ResultStore

# ---------------------------------------------------------------- the family, in one place


class ExponentialPrior:
    """weights ~ Dirichlet(alpha), lambda_k ~ Gamma(shape a, rate b)."""

    def __init__(self, weight_concentration=1.0, rate_shape=2.0, rate_rate=1.0):
        self.weight_concentration = float(weight_concentration)
        self.rate_shape, self.rate_rate = float(rate_shape), float(rate_rate)

    def validate(self):
        for name in ("weight_concentration", "rate_shape", "rate_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        return self

    def log_prob(self, params):
        w, lam = np.asarray(params["weights"]), np.asarray(params["lambdas"])
        a = np.full(len(w), self.weight_concentration)
        return float(gammaln(a.sum()) - gammaln(a).sum() + ((a - 1) * np.log(w)).sum()
                     + stats.gamma.logpdf(lam, self.rate_shape,
                                          scale=1 / self.rate_rate).sum())


def log_joint_matrix(X, params, covariance_type=""):
    """(N, K) log w_k + log lambda_k - lambda_k x_n."""
    lam = np.asarray(params["lambdas"]).reshape(-1)
    return np.log(params["weights"]) + stats.expon.logpdf(np.asarray(X, float),
                                                          scale=1 / lam[None, :])


class ExponentialMixtureEM:
    """EM (MLE or MAP with the prior above) for x_n ~ sum_k w_k Exp(lambda_k), x (N, 1)."""

    def __init__(self, n_components, *, weights_init, lambdas_init, prior=None,
                 assignment="soft", tol=1e-8, max_iter=500):
        self.k, self.prior, self.hard = n_components, prior, assignment == "hard"
        self.w0, self.l0 = np.asarray(weights_init, float), np.asarray(lambdas_init, float)
        self.tol, self.max_iter = tol, max_iter

    def _objective(self, mat):
        ll = logsumexp(mat, axis=1).sum()
        if self.prior is not None:
            ll += self.prior.log_prob({"weights": self.weights_, "lambdas": self.lambdas_})
        return ll

    def fit(self, X):
        x = np.asarray(X, float).reshape(-1)
        self.weights_, self.lambdas_ = self.w0.copy(), self.l0.copy()
        trace = []
        for it in range(self.max_iter):
            mat = log_joint_matrix(x[:, None], {"weights": self.weights_,
                                                "lambdas": self.lambdas_})
            trace.append(self._objective(mat))
            if it and abs(trace[-1] - trace[-2]) <= self.tol * len(x):
                break
            r = np.exp(mat - logsumexp(mat, axis=1, keepdims=True))  # E-step
            nk, sx = r.sum(0), r.T @ x
            if self.prior is None:  # M-step
                self.weights_, self.lambdas_ = nk / len(x), nk / sx
            else:
                p = self.prior
                a = p.weight_concentration
                self.weights_ = (nk + a - 1) / (len(x) + self.k * (a - 1))
                self.lambdas_ = (nk + p.rate_shape - 1) / (sx + p.rate_rate)
        self.lower_bounds_, self.n_iter_ = np.asarray(trace), len(trace)
        self.converged_ = len(trace) < self.max_iter
        return self


def exponential_mixture(X, n_components, prior=None):
    """NumPyro: the same mixture; prior=None gives param sites (the MLE)."""
    x = jnp.asarray(X, dtype=float).reshape(-1)
    if prior is None:
        w = numpyro.param("weights", jnp.full(n_components, 1.0 / n_components),
                          constraint=dist.constraints.simplex)
        lam = numpyro.param("lambdas", jnp.ones(n_components),
                            constraint=dist.constraints.positive)
    else:
        w = numpyro.sample("weights", dist.Dirichlet(
            jnp.full(n_components, prior.weight_concentration)))
        with numpyro.plate("components", n_components):
            lam = numpyro.sample("lambdas", dist.Gamma(prior.rate_shape, prior.rate_rate))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("obs", dist.MixtureSameFamily(dist.Categorical(w),
                                                     dist.Exponential(lam)), obs=x)


def _positive(X, name):
    X = np.asarray(X, dtype=float)
    if not np.all(np.isfinite(X)) or np.any(X <= 0):
        raise ValueError(f"dataset {name!r}: exponential data must be finite and > 0")
    return X


def _register():
    register_family("unit_test_positive", description="positive reals", prepare=_positive)

    @register_dataset("unit_test_waits", family="unit_test_positive",
                      description="waiting times from two exponentials (rates 0.5 and 4)",
                      provenance="synthetic, this test")
    def waits(n: int = 400, data_seed: int = 0):
        rng = np.random.default_rng(data_seed)
        y = (rng.random(n) < 0.3).astype(int)
        lam = np.array([0.5, 4.0])
        truth = {"weights": np.array([0.7, 0.3]), "lambdas": lam}
        return Dataset(rng.exponential(1 / lam[y])[:, None], y, truth, ("wait",), ("s",))

    def init(X, k, ct, seed):
        q = np.quantile(np.asarray(X, float)[:, 0], np.linspace(0.2, 0.8, k))
        return {"weights": np.full(k, 1 / k), "lambdas": 1 / q}

    def estimator(problem, *, prior, assignment, tol, max_iter, reg_covar):
        return ExponentialMixtureEM(problem.n_components,
                                    weights_init=problem.init["weights"],
                                    lambdas_init=problem.init["lambdas"], prior=prior,
                                    assignment=assignment, tol=tol, max_iter=max_iter)

    def build_prior(X, k, ct, overrides):
        return ExponentialPrior(**(overrides or {})).validate()

    register_model("unit_test_exponential_mixture", data_family="unit_test_positive",
                   param_names=("weights", "lambdas"), align_param="lambdas",
                   align_log_scale=True, prior_fields=("weight_concentration", "rate_shape",
                                                       "rate_rate"),
                   build_prior=build_prior, initial_values=init, em_estimator=estimator,
                   log_joint_matrix=log_joint_matrix, n_params=lambda k, d, ct: 2 * k - 1,
                   default_for_family=True)(exponential_mixture)


@pytest.fixture
def toy_family():
    _register()
    yield
    MODELS.pop("unit_test_exponential_mixture")
    DATASETS.pop("unit_test_waits")
    FAMILIES.pop("unit_test_positive")


GRID = {"methods": {"map_em": {"tol": 1e-11, "max_iter": 20000}, "map": {"num_steps": 500},
                    "vi_mean_field": {
    "num_steps": 500, "num_samples": 200, "elbo_particles": 200}},
    "grid": [{"datasets": ["unit_test_waits"], "n_components": [2],
              "methods": ["em", "map_em", "hard_em", "map", "vi_mean_field", "sklearn_em"]}]}


def test_config_knows_the_new_family(toy_family):
    cfg = parse_config(GRID)
    assert {c.model for c in cfg.cells} == {"unit_test_exponential_mixture"}  # its default
    assert any("sklearn_em cannot fit" in s for s in cfg.skipped)
    with pytest.raises(ValueError, match="rate_shape must be > 0"):  # the prior's own check
        parse_config({**GRID, "grid": [{**GRID["grid"][0], "prior": {"rate_shape": -3}}]})
    with pytest.raises(ValueError, match="K=500 components for 320 training points"):
        parse_config({**GRID, "grid": [{**GRID["grid"][0], "n_components": [500]}]})


def test_toy_family_through_the_grid(toy_family, tmp_path, require_models):
    require_models("fit_map", "fit_vi")
    cfg = parse_config(GRID)
    out = tmp_path / "out"
    summary = run_grid(cfg.cells, out, progress=False)
    table = ResultStore(out).read_table().set_index("method")
    assert summary.failed == 0, table["error"].to_dict()
    store = ResultStore(out)
    from experiments.problem import build_problem

    problem = build_problem(cfg.cells[0])
    x = problem.X_train[:, 0]
    params = {}
    for method in ("em", "map_em", "hard_em", "map", "vi_mean_field"):
        row = table.loc[method]
        params[method] = p = {k[len("param/"):]: v for k, v in
                              store.load_arrays(row["key"]).items() if k.startswith("param/")}
        # the suite's score = the mixture density summed by hand (no scipy, no log-sum-exp)
        by_hand = np.log((p["weights"] * p["lambdas"]
                          * np.exp(-x[:, None] * p["lambdas"])).sum(1)).sum()
        assert row["log_likelihood_train"] == pytest.approx(by_hand, rel=1e-10)
        assert np.isfinite(row["rmse_lambdas_vs_truth"]) and np.isfinite(row["bic"])
    em_trace = store.load_arrays(table.loc["em", "key"])["trace"]
    assert np.all(np.diff(em_trace) >= -1e-9 * abs(em_trace[-1]))  # EM never goes down
    # MAP by gradient (the NumPyro model) reaches MAP-EM's optimum of the same log joint
    assert table.loc["map", "log_joint"] == pytest.approx(table.loc["map_em", "log_joint"],
                                                          rel=1e-6)
    # "vs EM" from the store: 1-D components align by sorting
    em_sorted = np.sort(params["em"]["lambdas"])
    for method in ("map_em", "map", "vi_mean_field"):
        order = np.argsort(params[method]["lambdas"])
        expected = np.sqrt(np.mean((params[method]["lambdas"][order] - em_sorted) ** 2))
        assert table.loc[method, "rmse_lambdas_vs_em"] == pytest.approx(expected, rel=1e-10)
    assert table.loc["em", "rmse_lambdas_vs_em"] == 0.0
    assert np.isfinite(table.loc["vi_mean_field", "elbo_vi"])
    assert table.loc["hard_em", "elbo_em"] < table.loc["em", "elbo_em"]
    write_report(out)
    md = (out / "report.md").read_text()
    assert "RMSE lambdas vs truth" in md and "RMSE lambdas vs EM" in md
