"""The NumPyro models are exactly em_reference's models: same log joint at arbitrary
parameters (to 1e-8), same responsibilities, and their inputs are validated; their log densities
build no (N, K, D) temporary and do not cancel for tight clusters far apart."""

import jax
import numpy as np
import pytest
from numpyro.infer.util import log_density
from scipy import special, stats

import em_reference
import models
from em_reference import GaussianMixturePrior, PoissonMixturePrior

COV_TYPES = ("full", "tied", "diag", "spherical")


def numpyro_log_joint(model, args, kwargs, values):
    return float(jax.jit(lambda v: log_density(model, args, kwargs, v)[0])(values))


def em_log_joint(X, params, covariance_type=None, prior=None):
    """em_reference's log-likelihood (+ its prior's log density), jitted (eager is slow)."""
    def f(p):
        if covariance_type is None:
            ll = em_reference.poisson.log_likelihood(X, em_reference.PoissonParams(**p))
        else:
            ll = em_reference.gaussian.log_likelihood(X, em_reference.GaussianParams(**p),
                                                      covariance_type)
        return ll if prior is None else ll + prior.log_prob(p)
    return float(jax.jit(f)(params))


def custom_prior(rng, d, k, covariance_type):
    """Non-default hyper-parameters, so that every term of the density is exercised."""
    a = rng.normal(size=(d, d))
    psi = a @ a.T + np.eye(d)
    psi = {"full": psi, "tied": psi, "diag": np.diag(psi), "spherical": np.trace(psi) / d}
    return GaussianMixturePrior(rng.uniform(0.5, 3.0, k), rng.normal(size=d), 0.7, d + 1.5,
                                psi[covariance_type], covariance_type)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gaussian_log_joint_matches_em_reference(covariance_type, random_gaussian_params):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3)) * [1.0, 2.0, 0.5]
    k = 3
    for prior in (custom_prior(rng, 3, k, covariance_type),
                  GaussianMixturePrior.default(X, k, covariance_type)):
        params = random_gaussian_params(rng, k, 3, covariance_type)
        ours = numpyro_log_joint(models.gaussian_mixture, (X, k),
                                 {"covariance_type": covariance_type, "prior": prior}, params)
        theirs = em_log_joint(X, params, covariance_type, prior)
        assert abs(ours - theirs) <= 1e-8 * abs(theirs), (ours, theirs)


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_gaussian_without_prior_is_the_likelihood(covariance_type, random_gaussian_params):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 2))
    params = random_gaussian_params(rng, 2, 2, covariance_type)
    ours = numpyro_log_joint(models.gaussian_mixture, (X, 2),
                             {"covariance_type": covariance_type}, params)
    theirs = em_log_joint(X, params, covariance_type)
    assert abs(ours - theirs) <= 1e-8 * abs(theirs)


def test_one_dimensional_data_and_one_component():
    """(N,) data is one feature; K = 1 has a fixed weight (a one-point Dirichlet, density 1)."""
    x = np.random.default_rng(5).normal(2.0, 1.5, size=30)
    prior = GaussianMixturePrior.default(x, 1, "full")
    params = {"means": np.array([[1.7]]), "covariances": np.array([[[2.1]]])}
    ours = numpyro_log_joint(models.gaussian_mixture, (x, 1), {"prior": prior}, params)
    full = {"weights": np.ones(1), **params}
    theirs = em_log_joint(x, full, "full", prior)
    assert abs(ours - theirs) <= 1e-8 * abs(theirs)


@pytest.mark.parametrize("d", [1, 2])
def test_poisson_log_joint_matches_em_reference(d):
    rng = np.random.default_rng(6)
    x = rng.poisson(3.0, size=(50, d)).astype(float)
    x = x[:, 0] if d == 1 else x
    k = 3
    params = {"weights": rng.dirichlet(np.ones(k)), "rates": rng.uniform(0.5, 8.0, (k, d))}
    for prior in (PoissonMixturePrior(rng.uniform(0.5, 2.0, k), rng.uniform(1.0, 3.0, d), 0.4),
                  PoissonMixturePrior.default(x, k)):
        ours = numpyro_log_joint(models.poisson_mixture, (x, k), {"prior": prior}, params)
        theirs = em_log_joint(x, params, prior=prior)
        assert abs(ours - theirs) <= 1e-8 * abs(theirs), (ours, theirs)
    mle = numpyro_log_joint(models.poisson_mixture, (x, k), {}, params)
    assert abs(mle - em_log_joint(x, params)) <= 1e-8 * abs(mle)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_responsibilities_match_em_reference(covariance_type, random_gaussian_params):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(25, 2))
    params = random_gaussian_params(rng, 3, 2, covariance_type)
    expected = np.asarray(jax.jit(lambda p: em_reference.posterior_responsibilities(
        em_reference.gaussian.log_joint_matrix(X, em_reference.GaussianParams(**p),
                                               covariance_type)))(params))
    np.testing.assert_allclose(models.responsibilities(X, params, covariance_type), expected,
                               rtol=1e-10, atol=1e-12)
    # draws: a leading axis, and the posterior average
    draws = {k: np.stack([v, v]) for k, v in params.items()}
    assert models.responsibilities(X, draws, covariance_type).shape == (2, 25, 3)
    np.testing.assert_array_equal(models.hard_assignments(X, draws, covariance_type),
                                  expected.argmax(1))


def test_poisson_responsibilities():
    x = np.array([0.0, 1.0, 9.0, 12.0])
    params = {"weights": np.array([0.5, 0.5]), "rates": np.array([[1.0], [10.0]])}
    log_joint = em_reference.poisson.log_joint_matrix(x[:, None],
                                                      em_reference.PoissonParams(**params))
    np.testing.assert_allclose(models.responsibilities(x, params),
                               em_reference.posterior_responsibilities(log_joint), rtol=1e-10)
    np.testing.assert_array_equal(models.hard_assignments(x, params), [0, 0, 1, 1])


def _run(model, *args, **kwargs):
    from numpyro import handlers
    handlers.trace(handlers.seed(model, 0)).get_trace(*args, **kwargs)


@pytest.mark.parametrize("args, kwargs, match", [
    ((np.ones((5, 2, 2)), 2), {}, "shape"),
    ((np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 1.0]]), 2), {}, "NaN"),
    ((np.ones((5, 2)), 0), {}, "n_components"),
    ((np.ones((5, 2)), 2.5), {}, "n_components"),
    ((np.ones((5, 2)), 6), {}, "exceeds"),
    ((np.ones((5, 2)), 2), {"covariance_type": "banana"}, "covariance_type"),
    ((np.ones((5, 2)), 2), {"prior": "flat"}, "prior"),
    ((np.arange(10.0).reshape(5, 2), 2),
     {"covariance_type": "diag", "prior": GaussianMixturePrior.default(
         np.arange(10.0).reshape(5, 2), 2, "full")}, "covariance_type"),
    ((np.ones((5, 2)), 2), {"prior": GaussianMixturePrior(1.0, np.zeros(3), 1.0, 4.0, np.eye(3))},
     "mean_prior"),
])
def test_gaussian_model_rejects_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _run(models.gaussian_mixture, *args, **kwargs)


@pytest.mark.parametrize("x, match", [
    (np.array([1.0, -1.0, 2.0]), "non-negative integer"),
    (np.array([1.0, 0.5, 2.0]), "non-negative integer"),
    (np.array([1.0, np.inf, 2.0]), "NaN or inf"),
])
def test_poisson_model_rejects_bad_counts(x, match):
    with pytest.raises(ValueError, match=match):
        _run(models.poisson_mixture, x, 2)


def test_traced_data_and_the_default_prior():
    """The fit_* routines trace the models on array inputs: prepare_args first turns
    prior="default" into the concrete em_reference prior, and the log joint is unchanged."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(40, 2))
    args, kwargs = models.gaussian_mixture.prepare_args(X, 2, covariance_type="diag",
                                                        prior="default")
    expected = GaussianMixturePrior.default(X, 2, "diag")
    np.testing.assert_array_equal(kwargs["prior"].covariance_prior, expected.covariance_prior)
    params = {"weights": np.array([0.3, 0.7]), "means": rng.normal(size=(2, 2)),
              "covariances": np.ones((2, 2))}
    traced = float(jax.jit(lambda data, p: log_density(
        models.gaussian_mixture, (data, 2), kwargs, p)[0])(X, params))
    assert traced == pytest.approx(em_log_joint(X, params, "diag", expected), rel=1e-12)
    with pytest.raises(ValueError, match="prepare_args"):
        jax.jit(lambda data: log_density(models.gaussian_mixture, (data, 2),
                                         {"prior": "default"}, params)[0])(X)
    counts = rng.poisson(2.0, 30).astype(float)
    _, kw = models.poisson_mixture.prepare_args(counts, 2, prior="default")
    np.testing.assert_array_equal(kw["prior"].rate_shape,
                                  PoissonMixturePrior.default(counts, 2).rate_shape)


# --- no (N, K, D) temporaries, and no cancellation ------------------------------------------

def _largest_intermediate(jaxpr):
    """Elements of the largest array any equation of ``jaxpr`` (and its sub-jaxprs: scan and
    cond bodies, custom derivatives, ...) produces."""
    largest = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            largest = max(largest, int(np.prod(getattr(v.aval, "shape", ()))))
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple | list) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    largest = max(largest, _largest_intermediate(inner))
    return largest


@pytest.mark.parametrize("covariance_type", [*COV_TYPES, "poisson"])
def test_log_joint_and_gradient_build_no_nkd_temporary(covariance_type,
                                                       random_gaussian_params):
    """issue 20 item 3: value and gradient of the log joint, every array the program builds
    is smaller than N * K * D (N=101, K=3, D=5: the largest are (N, K) and (N, D))."""
    n, k, d = 101, 3, 5
    rng = np.random.default_rng(9)
    if covariance_type == "poisson":
        X = rng.poisson(3.0, (n, d)).astype(float)
        model, kwargs = models.poisson_mixture, {"prior": PoissonMixturePrior.default(X, k)}
        params = {"weights": rng.dirichlet(np.ones(k)), "rates": rng.uniform(1, 5, (k, d))}
    else:
        X = rng.normal(size=(n, d))
        model = models.gaussian_mixture
        kwargs = {"covariance_type": covariance_type,
                  "prior": GaussianMixturePrior.default(X, k, covariance_type)}
        params = random_gaussian_params(rng, k, d, covariance_type)
    value_and_grad = jax.value_and_grad(lambda p, x: log_density(model, (x, k), kwargs, p)[0])
    jaxpr = jax.make_jaxpr(value_and_grad)(params, X).jaxpr
    assert _largest_intermediate(jaxpr) < n * k * d


def _scipy_diag_log_likelihood(X, params):
    """Difference form, one component at a time, by scipy: no expansion to cancel."""
    per_k = [np.log(w) + stats.norm.logpdf(X, m, np.sqrt(v)).sum(1)
             for w, m, v in zip(params["weights"], params["means"], params["covariances"],
                                strict=True)]
    return float(special.logsumexp(np.stack(per_k, 1), axis=1).sum())


@pytest.mark.parametrize("offset, sd", [(1e6, 1e-3), (3.0, 1.0)])
def test_diag_density_has_no_cancellation(offset, sd):
    """issue 21 item 2's tight clusters far apart (sd 1e-3 at 0 and at (1e6, 0)): the expanded
    quadratic would lose ~100 nats; the model falls back to the difference form and equals
    scipy to 1e-10 (relative). A well-conditioned case takes the fast expanded form, same
    answer."""
    rng = np.random.default_rng(10)
    centres = np.array([[0.0, 0.0], [offset, 0.0]])
    X = np.concatenate([c + sd * rng.normal(size=(200, 2)) for c in centres])
    params = {"weights": np.array([0.5, 0.5]), "means": centres + sd * 0.01,
              "covariances": np.full((2, 2), sd**2)}
    ours = numpyro_log_joint(models.gaussian_mixture, (X, 2), {"covariance_type": "diag"},
                             params)
    truth = _scipy_diag_log_likelihood(X, params)
    assert ours == pytest.approx(truth, rel=1e-10, abs=1e-8)
    spherical = {**params, "covariances": np.full(2, sd**2)}
    ours = numpyro_log_joint(models.gaussian_mixture, (X, 2),
                             {"covariance_type": "spherical"}, spherical)
    assert ours == pytest.approx(truth, rel=1e-10, abs=1e-8)
