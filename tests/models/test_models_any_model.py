"""The fitting routines take any NumPyro model (the README example fits one with all three): a
user's own guide works, a model whose density is NaN is reported as failed, and bad options are
rejected before any work."""

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import models
from models import FitError


def regression(x, y=None):
    """A user's model, unrelated to mixtures: y = a + b x + noise."""
    a = numpyro.sample("a", dist.Normal(0.0, 10.0))
    b = numpyro.sample("b", dist.Normal(0.0, 10.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
    with numpyro.plate("n", len(x)):
        numpyro.sample("y", dist.Normal(a + b * x, sigma), obs=y)


def regression_guide(x, y=None):
    """A user's own (mean-field) guide."""
    for name in ("a", "b"):
        loc = numpyro.param(f"{name}_loc", 0.0)
        scale = numpyro.param(f"{name}_scale", 0.5, constraint=dist.constraints.positive)
        numpyro.sample(name, dist.Normal(loc, scale))
    loc = numpyro.param("log_sigma_loc", 0.0)
    numpyro.sample("sigma", dist.LogNormal(loc, numpyro.param(
        "log_sigma_scale", 0.3, constraint=dist.constraints.positive)))


def nan_model(y):
    theta = numpyro.sample("theta", dist.Normal(0.0, 1.0))
    numpyro.factor("broken", jnp.log(-1.0 - theta**2))  # log of a negative number: NaN
    numpyro.sample("y", dist.Normal(theta, 1.0), obs=y)


@pytest.fixture(scope="module")
def line():
    rng = np.random.default_rng(31)
    x = rng.uniform(-2, 2, 80)
    return x, 1.5 - 0.8 * x + 0.3 * rng.normal(size=80)


def test_user_guide(line):
    """A guide written by the user (the README example covers the autoguides and NUTS)."""
    x, y = line
    v = models.fit_vi(regression, x, y, guide=regression_guide, num_samples=400,
                      progress_bar=True)
    assert v.method == "vi_custom" and np.isfinite(v.elbo) and v.elbo_se > 0
    assert set(v.samples) == {"a", "b", "sigma"} and v.samples["a"].shape == (400,)
    assert set(v.diagnostics["guide_params"]) == {"a_loc", "a_scale", "b_loc", "b_scale",
                                                  "log_sigma_loc", "log_sigma_scale"}
    ols = np.polyfit(x, y, 1)[::-1]
    for name, value in zip(("a", "b"), ols, strict=True):
        assert abs(v.params[name] - value) < 3 * v.samples[name].std(), name


def test_nan_model_is_reported_as_failed():
    y = np.array([0.1, -0.3, 0.2])
    with pytest.raises(FitError, match="non-finite"):
        models.fit_map(nan_model, y, num_steps=200)
    with pytest.raises(FitError, match="non-finite"):
        models.fit_vi(nan_model, y, num_steps=200)
    with pytest.raises(FitError, match="non-finite"):
        models.fit_nuts(nan_model, y, num_warmup=20, num_samples=20, num_chains=1)


X = np.random.default_rng(0).normal(size=(30, 2))
X_NAN = X.copy()
X_NAN[3, 1] = np.nan
GM = models.gaussian_mixture


@pytest.mark.parametrize("call, match", [
    (lambda: models.fit_map(GM, X_NAN, 2), "NaN"),
    (lambda: models.fit_map(GM, X, 0), "n_components"),
    (lambda: models.fit_map(GM, X[:, :, None], 2), "shape"),
    (lambda: models.fit_map(GM, X, 2, covariance_type="round"), "covariance_type"),
    (lambda: models.fit_map(GM, X, 2, init={"mean": np.zeros((2, 2))}), "mean"),
    (lambda: models.fit_map(GM, X, 2, init={"means": np.zeros((3, 2))}), "shape"),
    (lambda: models.fit_map(GM, X, 2, prior="default",
                            init={"weights": np.array([0.5, 0.6])}), "support"),
    (lambda: models.fit_map(GM, X, 2, num_steps=0), "num_steps"),
    (lambda: models.fit_map(GM, X, 2, n_restarts=0), "n_restarts"),
    (lambda: models.fit_vi(GM, X, 2, prior="default", guide="banana"), "guide"),
    (lambda: models.fit_vi(GM, X, 2), "latent sample sites"),
    (lambda: models.fit_vi(GM, X, 2, prior="default", guide=regression_guide,
                           init={"means": np.zeros((2, 2))}), "custom guide"),
    (lambda: models.fit_nuts(GM, X, 2), "param sites"),
    (lambda: models.fit_nuts(GM, X, 2, prior="default", chain_method="parallel"),
     "chain_method"),
    (lambda: models.fit_nuts(GM, X, 2, prior="default", ordered=True), "1-D"),
    (lambda: models.fit_map(lambda: None), "nothing to fit"),
    # issue 21 item 7 and the rest of the hostile-input pass
    (lambda: models.fit_nuts(GM, X, 2, prior="default", target_accept_prob=1.5),
     "target_accept_prob"),
    (lambda: models.fit_nuts(GM, X, 2, prior="default", target_accept_prob=0.0),
     "target_accept_prob"),
    (lambda: models.fit_nuts(GM, X, 2, prior="default", num_samples=100, max_samples=50),
     "max_samples"),
    (lambda: models.fit_nuts(GM, X, 2, prior="default", target_r_hat=1.0), "target_r_hat"),
    (lambda: models.fit_nuts(GM, X, 2, prior="default", target_ess=0), "target_ess"),
    (lambda: models.fit_nuts(GM, X, 2, prior="default", max_seconds=-1.0), "max_seconds"),
    (lambda: models.fit_nuts(GM, X, 2, prior="default", block_size=0), "block_size"),
    (lambda: models.fit_nuts(GM, X, 2, prior="default", dense_mass="yes"), "dense_mass"),
    (lambda: models.fit_map(GM, X, 2, gradient_tol=0.0), "gradient_tol"),
    (lambda: models.fit_vi(GM, X, 2, prior="default", plateau_k=-1.0), "plateau_k"),
    (lambda: models.fit_vi(GM, X, 2, prior="default", tol=float("nan")), "tol"),
    (lambda: models.fit_map(GM, X, 2, model_kwargs=[("prior", None)]), "model_kwargs"),
    (lambda: models.fit_vi(GM, X, 2, prior="default", init_strategy="uniform"),
     "init_strategy"),
    (lambda: models.fit_map(GM, X + 1j, 2), "complex"),
    (lambda: models.fit_vi(GM, X + 0j, 2, prior="default"), "complex"),
    (lambda: models.fit_map(models.poisson_mixture, np.array([1, 2, 3]) + 1j, 2), "complex"),
    (lambda: models.fit_map(GM, np.array([["a", "b"]] * 5), 2), "real numbers"),
    (lambda: models.fit_map(GM, np.zeros((5, 0)), 2), "empty"),
    (lambda: GM(X, 3, covariance_type="full", prior="default"), "fit_map"),
    (lambda: GM(X, 3), "NumPyro model"),
    (lambda: models.poisson_mixture(np.arange(5.0), 2), "NumPyro model"),
    (lambda: models.responsibilities(X[:, :1], {"weights": np.full(2, 0.5),
                                                "means": np.zeros((2, 2)),
                                                "covariances": np.ones((2, 2))}, "diag"),
     "features"),
    (lambda: models.responsibilities(X, {"weights": np.full(2, 0.5), "means": np.zeros((2, 2)),
                                         "covariances": np.ones((3, 2))}, "diag"),
     "covariances"),
    (lambda: models.responsibilities(np.arange(4.0)[:, None] * [1, 1], {
        "weights": np.full(2, 0.5), "rates": np.ones((2, 1))}), "rates"),
])
def test_bad_options_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("routine, extra", [("fit_map", {}), ("fit_vi", {"prior": "default"}),
                                            ("fit_nuts", {"prior": "default"})])
@pytest.mark.parametrize("seed", ["a", 1.5, -1, True, None, 2**64])
def test_non_int_seeds_raise_value_error(routine, extra, seed):
    with pytest.raises(ValueError, match="seed"):
        getattr(models, routine)(GM, X, 2, seed=seed, **extra)


def test_responsibilities_used_to_broadcast_a_wrong_feature_count():
    """issue 21: (N, 1) data against 2-D means broadcast into a (N, K) answer; the same call
    with the right shapes still works."""
    params = {"weights": np.full(2, 0.5), "means": np.zeros((2, 2)),
              "covariances": np.ones((2, 2))}
    assert models.responsibilities(X, params, "diag").shape == (30, 2)
    with pytest.raises(ValueError, match="1 features"):
        models.responsibilities(X[:, :1], params, "diag")
