"""A model with local latents and no component count, registered from this file only: cells
without K, model options in the key, and scoring through the model's own ``score`` hook (here
the exact held-out log p(x) of probabilistic PCA), through the grid, the store and the report.
"""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from experiments import Dataset, register_dataset, register_model
from experiments.config import parse_config
from experiments.datasets import DATASETS
from experiments.methods import METHODS, make_fit, register_method
from experiments.models_registry import MODELS
from experiments.report import write_report
from experiments.runner import run_grid
from experiments.specs import Count
from experiments.store import ResultStore


def ppca(X, latent_dim: Count = 1):
    """x_n = W z_n + mu + sigma eps_n, z_n ~ N(0, I_L): one local latent per row."""
    n, d = X.shape
    W = numpyro.sample("W", dist.Normal(0.0, 3.0).expand([d, latent_dim]).to_event(2))
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0).expand([d]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(3.0))
    with numpyro.plate("data", n):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1))
        numpyro.sample("obs", dist.Normal(z @ W.T + mu, sigma).to_event(1), obs=X)


def exact_log_px(X, params):
    """(N,) log N(x | mu, W W^T + sigma^2 I), by Cholesky (the integral over z, exactly)."""
    W, mu, s = (np.asarray(params[k], float) for k in ("W", "mu", "sigma"))
    cov = W @ W.T + s**2 * np.eye(len(mu))
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (np.asarray(X, float) - mu).T)
    return -0.5 * (len(mu) * np.log(2 * np.pi) + 2 * np.log(np.diag(chol)).sum()
                   + (z**2).sum(0))


def ppca_score(problem, fit):
    from scipy.stats import multivariate_normal

    W, mu, s = (np.asarray(fit.params[k], float) for k in ("W", "mu", "sigma"))
    mvn = multivariate_normal(mu, W @ W.T + s**2 * np.eye(len(mu)))
    test = mvn.logpdf(problem.X_test)
    return {"log_likelihood_train": float(mvn.logpdf(problem.X_train).sum()),
            "log_likelihood_test": float(test.sum()),
            "log_likelihood_test_per_point": float(test.mean()),
            "log_likelihood_test_per_point_se": float(test.std(ddof=1) / np.sqrt(len(test)))}


def ppca_mle(problem):
    """Tipping & Bishop (1999): the closed-form maximum-likelihood PPCA."""
    X = np.asarray(problem.X_train, float)
    L = problem.model_options["latent_dim"]
    mu = X.mean(0)
    vals, vecs = np.linalg.eigh(np.cov(X.T, bias=True))
    vals, vecs = vals[::-1], vecs[:, ::-1]
    s2 = vals[L:].mean()
    W = vecs[:, :L] * np.sqrt(vals[:L] - s2)
    return make_fit("unit_test_ppca_mle", {"W": W, "mu": mu, "sigma": np.sqrt(s2)},
                    "log_likelihood", [], 0, True, 0.0, 0.0)


@pytest.fixture
def registered():
    W0 = np.array([[2.0], [-1.0], [0.5]])

    @register_dataset("unit_test_ppca_data", family="gaussian", description="PPCA draws",
                      provenance="synthetic, this test")
    def data(n: Count = 300):
        rng = np.random.default_rng(3)
        z = rng.normal(size=(n, 1))
        return Dataset(z @ W0.T + 1.0 + 0.3 * rng.normal(size=(n, 3)))

    register_model("unit_test_ppca", data_family="gaussian", has_components=False,
                   options={"latent_dim": 1}, param_names=("W", "mu", "sigma"),
                   score=ppca_score,
                   table_columns=(("log_likelihood_test_per_point_se", "held-out / point s.e."),)
                   )(ppca)
    register_method("unit_test_ppca_mle", models=lambda m: m.name == "unit_test_ppca")(ppca_mle)
    yield
    DATASETS.pop("unit_test_ppca_data")
    MODELS.pop("unit_test_ppca")
    METHODS.pop("unit_test_ppca_mle")


def _grid(**block):
    return {"methods": {"vi_mean_field": {"num_steps": 300, "num_samples": 100,
                                          "elbo_particles": 100}},
            "grid": [{"datasets": ["unit_test_ppca_data"], "model": "unit_test_ppca",
                      "methods": ["unit_test_ppca_mle", "vi_mean_field"], **block}]}


def test_cells_have_no_k_and_model_options_are_keyed_and_checked(registered):
    cfg = parse_config(_grid())
    assert {c.n_components for c in cfg.cells} == {None}
    assert all(c.model_options == {"latent_dim": 1} for c in cfg.cells)
    spelled = parse_config(_grid(model_options={"latent_dim": 1}))
    assert [c.key for c in spelled.cells] == [c.key for c in cfg.cells]  # default = spelled
    other = parse_config(_grid(model_options={"latent_dim": 2}))
    assert not {c.key for c in other.cells} & {c.key for c in cfg.cells}
    for block, message in (({"n_components": [2]}, "has no component count K"),
                           ({"model_options": {"depth": 3}}, r"no option\(s\) \['depth'\]"),
                           ({"model_options": {"latent_dim": 0}}, "'latent_dim' must be >= 1"),
                           ({"model_options": {"latent_dim": "ten"}}, "must be an integer")):
        with pytest.raises(ValueError, match=message):
            parse_config(_grid(**block))
    # methods that need what the model lacks are not applicable (EM: no estimator)
    skipped = parse_config({"grid": [{"datasets": ["unit_test_ppca_data"],
                                      "model": "unit_test_ppca",
                                      "methods": ["em", "unit_test_ppca_mle"]}]}).skipped
    assert any("em cannot fit unit_test_ppca" in s for s in skipped)


def test_scored_through_the_hook_end_to_end(registered, tmp_path, require_models):
    require_models("fit_vi")
    cfg = parse_config(_grid(model_options={"latent_dim": 1}))
    out = tmp_path / "out"
    summary = run_grid(cfg.cells, out, progress=False)
    assert summary.failed == 0 and summary.done == 2
    store = ResultStore(out)
    table = store.read_table().set_index("method")
    assert table["n_components"].isna().all()
    from experiments.problem import build_problem

    problem = build_problem(cfg.cells[0])
    for method in ("unit_test_ppca_mle", "vi_mean_field"):
        row = table.loc[method]
        arrays = store.load_arrays(row["key"])
        params = {k: arrays[f"param/{k}"] for k in ("W", "mu", "sigma")}
        test = exact_log_px(problem.X_test, params)  # an oracle written differently
        assert row["log_likelihood_test_per_point"] == pytest.approx(test.mean(), rel=1e-10)
        assert row["log_likelihood_test_per_point_se"] == pytest.approx(
            test.std(ddof=1) / np.sqrt(len(test)), rel=1e-10)
        assert "bic" not in table  # no plug-in mixture scoring for this model
    # the closed form is the maximum likelihood: no other fit scores higher on its data
    assert table.loc["unit_test_ppca_mle", "log_likelihood_train"] >= \
        table.loc["vi_mean_field", "log_likelihood_train"]
    assert np.isfinite(table.loc["vi_mean_field", "elbo_vi"])
    assert np.isfinite(table.loc["vi_mean_field", "posterior_sd_W"])  # globals only
    assert "posterior_sd_z" not in table
    html = write_report(out)
    assert "held-out / point s.e." in (out / "report.md").read_text() and html.is_file()
