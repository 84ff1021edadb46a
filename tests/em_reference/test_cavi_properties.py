"""Properties of CAVI: the ELBO never decreases (hypothesis), every update maximises the ELBO in
its block (autodiff on the ELBO function: zero gradient, and a perturbation lowers it),
frequency weights are duplicated rows, restarts keep the best bound, bad input is refused."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from em_reference.cavi import (GaussianMixtureCAVI, PoissonMixtureCAVI, families, gaussian, loop,
                               poisson)
from em_reference.cavi.weights import WEIGHT_PRIOR_TYPES
from em_reference.priors import COVARIANCE_TYPES, GaussianMixturePrior, PoissonMixturePrior

N, D, K = 24, 2, 3


def _gaussian_problem(seed, spread, kappa0, extra_dof, psi_scale, covariance_type):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D)) * spread + rng.normal(0, 3 * spread, (K, D))[rng.integers(
        0, K, N)]
    psi = {"full": np.eye(D), "tied": np.eye(D), "diag": np.ones(D),
           "spherical": 1.0}[covariance_type]
    prior = GaussianMixturePrior(0.7, X.mean(0), kappa0, D + extra_dof,
                                 np.asarray(psi) * psi_scale * spread**2, covariance_type)
    return X, prior


def _trace(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(X).lower_bounds_


def _assert_non_decreasing(trace):
    steps = np.diff(trace)
    # round-off only: 1e-10 relative to the bound's size
    assert np.all(steps >= -1e-10 * np.abs(trace[1:])), steps.min()


@pytest.mark.parametrize("kind", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), spread=st.floats(0.05, 20.0),
       kappa0=st.floats(1e-3, 10.0), extra_dof=st.floats(0.0, 5.0),
       psi_scale=st.floats(1e-3, 10.0), init=st.sampled_from(["random", "kmeans"]))
def test_gaussian_elbo_never_decreases(covariance_type, kind, seed, spread, kappa0, extra_dof,
                                       psi_scale, init):
    extra_dof = extra_dof + (0.01 if covariance_type in ("full", "tied") else -0.99)
    X, prior = _gaussian_problem(seed, spread, kappa0, extra_dof, psi_scale, covariance_type)
    fit = GaussianMixtureCAVI(K, covariance_type=covariance_type, prior=prior, tol=0.0,
                              max_iter=25, init_params=init, random_state=seed,
                              weight_concentration_prior_type=kind)
    trace = _trace(fit, X)
    assert len(trace) == 26 and np.all(np.isfinite(trace))
    _assert_non_decreasing(trace)


@pytest.mark.parametrize("kind", WEIGHT_PRIOR_TYPES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), rate=st.floats(0.01, 50.0), shape0=st.floats(0.05, 10.0),
       rate0=st.floats(0.01, 10.0), alpha=st.floats(0.05, 5.0))
def test_poisson_elbo_never_decreases(kind, seed, rate, shape0, rate0, alpha):
    rng = np.random.default_rng(seed)
    x = rng.poisson(rate * rng.uniform(0.2, 2.0, (K, D))[rng.integers(0, K, N)]).astype(float)
    fit = PoissonMixtureCAVI(K, prior=PoissonMixturePrior(alpha, shape0, rate0), tol=0.0,
                             max_iter=25, init_params="random", random_state=seed,
                             weight_concentration_prior_type=kind)
    trace = _trace(fit, x)
    assert len(trace) == 26 and np.all(np.isfinite(trace))
    _assert_non_decreasing(trace)


# ---------------------------------------------------------------- each update maximises its block
def _gaussian_blocks(q, covariance_type):
    """Free (unconstrained-in-shape) coordinates of each block of q and the map back: the
    scale through its Cholesky factor (full, tied) so that it stays symmetric."""
    comp = q.components
    blocks = {"weights": q.weights, "mean_precision": comp.mean_precision, "means": comp.means,
              "degrees_of_freedom": comp.degrees_of_freedom}
    if covariance_type in ("full", "tied"):
        blocks["scale_cholesky"] = jnp.linalg.cholesky(comp.scale)
    else:
        blocks["scale"] = comp.scale
    return blocks


def _gaussian_from_blocks(blocks):
    scale = blocks.get("scale")
    if scale is None:
        chol = jnp.tril(blocks["scale_cholesky"])
        scale = chol @ jnp.swapaxes(chol, -1, -2)
    return loop.Variational(blocks["weights"], gaussian.NormalWishart(
        blocks["mean_precision"], blocks["means"], blocks["degrees_of_freedom"], scale))


def _check_block_maximum(objective, blocks, rng, names=None):
    """Gradient ~ 0 in every block, and a small random move of each block lowers the
    objective."""
    grad_fn = jax.jit(jax.grad(objective))
    objective = jax.jit(objective)
    value = float(objective(blocks))
    grads = grad_fn(blocks)
    for name in names or blocks:
        g, x = np.asarray(grads[name]), np.asarray(blocks[name])
        scale = abs(value) / max(1.0, np.abs(x).max())
        assert np.abs(g).max() < 1e-6 * scale, (name, np.abs(g).max())
        for _ in range(3):
            step = rng.normal(size=x.shape) * 1e-3 * np.maximum(np.abs(x), 1e-2)
            moved = dict(blocks, **{name: jnp.asarray(x + step)})
            if name == "scale_cholesky":  # keep the Cholesky factor lower triangular
                moved[name] = jnp.tril(moved[name])
            assert float(objective(moved)) < value, name


@pytest.mark.parametrize("kind", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_m_step_maximises_the_elbo_in_q_theta(covariance_type, kind):
    rng = np.random.default_rng(0)
    X, prior = _gaussian_problem(1, 1.5, 0.4, 2.0, 1.0, covariance_type)
    prior = prior.validate(D, K)
    resp = jnp.asarray(rng.dirichlet(np.ones(K), N))
    w = jnp.asarray(rng.integers(1, 4, N).astype(float))
    family = families.GaussianCAVIFamily(covariance_type)
    q = loop.m_step(family.statistics(X, resp * w[:, None]), prior, family, kind)

    def objective(blocks):
        return loop.elbo(X, w, resp, _gaussian_from_blocks(blocks), prior, family, kind)

    _check_block_maximum(objective, _gaussian_blocks(q, covariance_type), rng)


@pytest.mark.parametrize("kind", WEIGHT_PRIOR_TYPES)
def test_poisson_m_step_maximises_the_elbo_in_q_theta(kind):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.poisson(4.0, (N, D)).astype(float))
    prior = PoissonMixturePrior(0.8, np.array([1.0, 2.0]), np.array([0.5, 0.3])).validate(D, K)
    resp = jnp.asarray(rng.dirichlet(np.ones(K), N))
    w = jnp.ones(N)
    family = families.PoissonCAVIFamily()
    q = loop.m_step(family.statistics(x, resp), prior, family, kind)

    def objective(blocks):
        return loop.elbo(x, w, resp, loop.Variational(blocks["weights"], poisson.GammaRates(
            blocks["shape"], blocks["rate"])), prior, family, kind)

    blocks = {"weights": q.weights, "shape": q.components.shape, "rate": q.components.rate}
    _check_block_maximum(objective, blocks, rng)


@pytest.mark.parametrize("kind", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_e_step_maximises_the_elbo_in_q_z(covariance_type, kind):
    """At r = E-step(q), the ELBO as a function of the responsibilities' logits (each row
    free on the simplex) has zero gradient and is lowered by a perturbation."""
    rng = np.random.default_rng(2)
    X, prior = _gaussian_problem(3, 1.0, 0.5, 1.0, 2.0, covariance_type)
    prior = prior.validate(D, K)
    family = families.GaussianCAVIFamily(covariance_type)
    w = jnp.ones(N)
    # arbitrary factors: an M-step of random responsibilities, then moved
    q = loop.m_step(family.statistics(X, jnp.asarray(rng.dirichlet(np.ones(K), N))), prior,
                    family, kind)
    q = q._replace(components=q.components._replace(means=q.components.means + 0.4))
    logits = loop.log_responsibilities(X, q, family, kind)

    def objective(blocks):
        resp = jax.nn.softmax(blocks["logits"], axis=1)
        return loop.elbo(X, w, resp, q, prior, family, kind)

    _check_block_maximum(objective, {"logits": logits}, rng)


# ---------------------------------------------------------------- weights, restarts, the API
def test_frequency_weights_are_duplicated_rows():
    """From the same start, a fit with integer weights is the fit of the repeated rows: the
    same factors and the same ELBO at every iteration."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 2)) + rng.choice([-3.0, 3.0], size=(40, 1))
    counts = rng.integers(0, 4, 40)
    rows = np.repeat(X, counts, 0)
    prior = GaussianMixturePrior.default(rows, 2).validate(2, 2)
    family, kind = families.GaussianCAVIFamily("full"), "dirichlet_distribution"
    resp = rng.dirichlet(np.ones(2), 40)

    def run(X, w, resp):
        q, e = loop.init_from_responsibilities(jnp.asarray(X), jnp.asarray(w, float),
                                               jnp.asarray(resp), prior, family=family,
                                               kind=kind)
        return loop.fit_cavi(jax.tree.map(lambda a: a[None], q), e[None], jnp.asarray(X),
                             jnp.asarray(w, float), prior, jnp.asarray(0.0), family=family,
                             kind=kind, max_iter=20)

    weighted = run(X, counts, resp)
    repeated = run(rows, np.ones(len(rows)), np.repeat(resp, counts, 0))
    for a, b in zip(jax.tree.leaves(weighted.q), jax.tree.leaves(repeated.q)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(weighted.trace, repeated.trace, rtol=1e-11)
    fit = GaussianMixtureCAVI(2, prior=prior, random_state=0).fit(X, sample_weight=counts)
    assert fit.elbo_vi(X, sample_weight=counts) == pytest.approx(fit.elbo_vi(rows), rel=1e-11)


def test_restarts_keep_the_best_bound():
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(m, 0.5, (60, 2)) for m in ([0, 0], [3, 0], [0, 3], [3, 3])])
    kw = dict(prior="default", tol=1e-8, max_iter=300, init_params="random_from_data",
              random_state=1)
    one = GaussianMixtureCAVI(4, n_init=1, **kw).fit(X)
    many = GaussianMixtureCAVI(4, n_init=6, **kw).fit(X)
    # the first restart of n_init=6 is the n_init=1 fit (same random stream)
    assert many.lower_bound_ >= one.lower_bound_ - 1e-9
    assert many.converged_ and many.lower_bounds_[-1] == many.lower_bound_


def test_fitted_attributes_and_predictions():
    rng = np.random.default_rng(6)
    X = np.concatenate([rng.normal(-3, 1, (100, 2)), rng.normal(3, 1, (150, 2))])
    fit = GaussianMixtureCAVI(2, prior="default", random_state=0, max_iter=500).fit(X)
    assert fit.converged_
    resp = fit.predict_proba(X)
    np.testing.assert_allclose(resp.sum(1), 1.0)
    np.testing.assert_array_equal(fit.predict(X), resp.argmax(1))
    np.testing.assert_allclose(np.sort(fit.weights_), [0.4, 0.6], atol=0.02)
    np.testing.assert_allclose(fit.precisions_, np.linalg.inv(fit.covariances_), rtol=1e-10)
    pc = fit.precisions_cholesky_
    np.testing.assert_allclose(pc @ np.swapaxes(pc, 1, 2), fit.precisions_, rtol=1e-10)
    # the optimal q(Z) of the fitted factors can only raise the bound
    assert fit.elbo_vi(X) >= fit.lower_bound_ - 1e-9
    assert fit.elbo_vi(X, resp=np.full((250, 2), 0.5)) < fit.elbo_vi(X)


def test_poisson_recovers_rates():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.poisson(2.0, 600), rng.poisson(9.0, 400)]).astype(float)
    fit = PoissonMixtureCAVI(2, random_state=0, max_iter=500).fit(x)
    order = np.argsort(fit.rates_[:, 0])
    np.testing.assert_allclose(fit.rates_[order, 0], [2.0, 9.0], rtol=0.1)
    np.testing.assert_allclose(fit.weights_[order], [0.6, 0.4], atol=0.05)
    assert fit.rates_.shape == (2, 1) and fit.rate_shape_.shape == (2, 1)


@pytest.mark.parametrize("kwargs,X,match", [
    (dict(n_components=0), None, "n_components"),
    (dict(max_iter=-1), None, "max_iter"),
    (dict(tol=-1.0), None, "tol"),
    (dict(init_params="nope"), None, "init_params"),
    (dict(weight_concentration_prior_type="pitman_yor"), None, "weight_concentration_prior"),
    (dict(covariance_type="banded"), None, "covariance_type"),
    (dict(prior=None), None, "needs a prior"),
    (dict(prior=GaussianMixturePrior(1.0, np.zeros(2), 1.0, 3.0, 1.0, "spherical")), None,
     "covariance_type"),
    (dict(prior=GaussianMixturePrior(np.array([1.0, 2.0]), np.zeros(2), 1.0, 3.0, np.eye(2)),
          weight_concentration_prior_type="dirichlet_process", n_components=2), None,
     "one concentration"),
    (dict(n_components=50), None, "n_samples >= n_components"),
    (dict(), np.array([[0.0, np.nan]] * 5), "NaN"),
])
def test_bad_input_is_refused(kwargs, X, match):
    X = np.random.default_rng(0).normal(size=(20, 2)) if X is None else X
    with pytest.raises(ValueError, match=match):
        GaussianMixtureCAVI(**{"n_components": 2, **kwargs}).fit(X)


def test_poisson_refuses_non_counts():
    with pytest.raises(ValueError, match="non-negative"):
        PoissonMixtureCAVI(2).fit(np.array([1.0, -2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="integers"):
        PoissonMixtureCAVI(2).fit(np.array([1.0, 2.5, 3.0, 4.0]))
