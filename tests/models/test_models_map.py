"""fit_map reaches em_reference's MAP-EM optimum (and EM's MLE with prior=None) from the same
initial parameters, stays at the MAP-EM solution when started there, and certifies its point by
the gradient (an unbounded likelihood is never reported as converged)."""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from numpyro.distributions import biject_to, constraints

import em_reference
import models
from em_reference import GaussianMixtureEM, GaussianMixturePrior, PoissonMixtureEM
from experiments.datasets import load_dataset

REL = 1e-4  # the agreement tolerance on the objective (measured: ~1e-13)


def gaussian_start(X, covariance_type):
    """A shared start: equal weights, one data point per cluster, the data covariance."""
    cov = np.cov(X.T)
    covs = {"full": np.stack([cov] * 3), "diag": np.tile(np.diag(cov), (3, 1))}[covariance_type]
    return {"weights": np.full(3, 1 / 3), "means": X[[0, 500, 1500]], "covariances": covs}


def em_gaussian(X, covariance_type, start, prior):
    covs = start["covariances"]
    prec = np.linalg.inv(covs) if covariance_type == "full" else 1.0 / covs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # EM must converge for the comparison to mean anything
        return GaussianMixtureEM(3, covariance_type=covariance_type, prior=prior, tol=1e-12,
                                 max_iter=5000, reg_covar=0.0, weights_init=start["weights"],
                                 means_init=start["means"], precisions_init=prec).fit(X)


def em_solution(em):
    return {"weights": em.weights_, "means": em.means_, "covariances": em.covariances_}


def relative_gap(result, em):
    return abs(result.objective_trace[-1] - em.lower_bound_) / abs(em.lower_bound_)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_map_matches_map_em_on_textbook_data(textbook, covariance_type):
    start = gaussian_start(textbook, covariance_type)
    em = em_gaussian(textbook, covariance_type, start, "default")
    res = models.fit_map(models.gaussian_mixture, textbook, 3, covariance_type=covariance_type,
                         prior="default", init=start)
    assert res.method == "map" and res.objective_name == "log_joint"
    assert res.converged, res.diagnostics["message"]
    assert relative_gap(res, em) < REL, (res.objective_trace[-1], em.lower_bound_)
    np.testing.assert_allclose(res.params["means"], em.means_, atol=1e-3)
    np.testing.assert_allclose(res.params["covariances"], em.covariances_, atol=1e-3)
    np.testing.assert_allclose(res.params["weights"], em.weights_, atol=1e-4)

    # started at the MAP-EM solution, it stays there
    stay = models.fit_map(models.gaussian_mixture, textbook, 3,
                          covariance_type=covariance_type, prior="default",
                          init=em_solution(em))
    assert relative_gap(stay, em) < REL
    assert stay.objective_trace[-1] >= em.lower_bound_ - 1e-6 * abs(em.lower_bound_)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(stay.params[name], getattr(em, name + "_"), atol=1e-4)


def test_map_matches_map_em_on_poisson_data(poisson_counts):
    start = {"weights": np.array([0.5, 0.5]), "rates": np.array([[1.0], [8.0]])}
    em = PoissonMixtureEM(2, prior="default", tol=1e-12, max_iter=5000,
                          weights_init=start["weights"], rates_init=start["rates"]
                          ).fit(poisson_counts)
    res = models.fit_map(models.poisson_mixture, poisson_counts, 2, prior="default",
                         init=start)
    assert res.converged and relative_gap(res, em) < REL
    np.testing.assert_allclose(res.params["rates"], em.rates_, rtol=1e-4)
    stay = models.fit_map(models.poisson_mixture, poisson_counts, 2, prior="default",
                          init={"weights": em.weights_, "rates": em.rates_})
    assert relative_gap(stay, em) < REL
    np.testing.assert_allclose(stay.params["rates"], em.rates_, rtol=1e-5)


def test_mle_by_gradient_matches_em(textbook):
    """prior=None: numpyro.param sites, the objective is the log-likelihood."""
    start = gaussian_start(textbook, "full")
    em = em_gaussian(textbook, "full", start, None)
    res = models.fit_map(models.gaussian_mixture, textbook, 3, covariance_type="full",
                         init=start)
    assert res.method == "mle" and res.objective_name == "log_likelihood"
    assert relative_gap(res, em) < REL, (res.objective_trace[-1], em.lower_bound_)


def test_poisson_mle_with_restarts_keeps_the_best(poisson_counts):
    """Two restarts run in parallel; one starts with both rates in the same place."""
    em = PoissonMixtureEM(2, tol=1e-12, max_iter=5000, random_state=0, n_init=3
                          ).fit(poisson_counts)
    bad = {"weights": np.array([0.5, 0.5]), "rates": np.array([[3.5], [3.5]])}
    res = models.fit_map(models.poisson_mixture, poisson_counts, 2, init=[bad], n_restarts=2,
                         seed=1)
    objectives = res.diagnostics["restart_objectives"]
    assert objectives.shape == (2,)
    assert res.objective_trace[-1] == pytest.approx(np.nanmax(objectives), rel=1e-12)
    assert objectives[0] < objectives[1]  # the symmetric start is a saddle it cannot leave
    assert relative_gap(res, em) < REL
    assert res.diagnostics["best_restart"] == 1


def test_result_fields(poisson_counts):
    res = models.fit_map(models.poisson_mixture, poisson_counts, 2, prior="default",
                         init={"weights": np.array([0.3, 0.7]), "rates": np.array([[2.], [6.]])})
    assert isinstance(res, models.FitResult)
    assert res.samples is None and res.inference_data is None and res.elbo is None
    assert set(res.params) == {"weights", "rates"}
    assert res.params["rates"].shape == (2, 1)
    assert len(res.objective_trace) >= 2 and np.all(np.isfinite(res.objective_trace))
    assert 0 < res.compile_time < res.wall_time
    assert res.n_steps >= len(res.objective_trace) - 1
    for key in ("n_nonfinite", "divergences", "r_hat_max", "ess_bulk_min", "message",
                "gradient_norm", "gradient_tol", "n_observations"):
        assert key in res.diagnostics
    assert res.status == "ok" and res.converged and res.diagnostics["n_observations"] == 1000
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.method = "x"


# --- the certificate: gradient norm per observation at the returned point ------------------

def _unconstrained(params, sites):
    return {k: biject_to(s).inv(jnp.asarray(params[k])) for k, s in sites.items()}


def test_gradient_certificate_matches_finite_differences(textbook):
    """After 5 Adam steps and no polish the point is far from the optimum: the reported
    gradient norm is that of em_reference's log joint (written by hand) with respect to
    numpyro's unconstrained coordinates, by central differences; the status says so."""
    X = textbook[::10]  # (200, 2)
    prior = GaussianMixturePrior.default(X, 2, "full")
    start = {"weights": np.array([0.5, 0.5]), "means": X[[0, 150]],
             "covariances": np.stack([np.cov(X.T)] * 2)}
    res = models.fit_map(models.gaussian_mixture, X, 2, prior=prior, init=start, num_steps=5,
                         window=5, polish=False)
    assert res.status == "not_converged" and not res.converged
    d = res.diagnostics
    assert d["n_observations"] == 200 and d["gradient_norm"] > d["gradient_tol"]
    supports = {"weights": constraints.simplex, "means": constraints.real_vector,
                "covariances": constraints.positive_definite}
    u0 = _unconstrained(res.params, supports)
    flat0, unravel = ravel_pytree(u0)

    @jax.jit
    def log_joint(flat):
        p = {k: biject_to(supports[k])(v) for k, v in unravel(flat).items()}
        return (em_reference.gaussian.log_likelihood(X, em_reference.GaussianParams(**p),
                                                     "full") + prior.log_prob(p))

    h = 1e-5
    grad = np.array([(log_joint(flat0 + h * e) - log_joint(flat0 - h * e)) / (2 * h)
                     for e in np.eye(flat0.size)])
    assert d["gradient_norm"] == pytest.approx(np.linalg.norm(grad) / 200, rel=1e-5)


def _start(X, k, covariance_type, rows):
    cov = np.cov(X.T).reshape(X.shape[1], X.shape[1])
    covs = {"full": np.stack([cov] * k), "diag": np.tile(np.diag(cov), (k, 1))}[covariance_type]
    return {"weights": np.full(k, 1 / k), "means": X[rows], "covariances": covs}


@pytest.mark.parametrize("name, k, covariance_type, rows", [
    ("faithful", 2, "full", [0, 1]), ("iris", 3, "diag", [0, 50, 100])])
def test_certified_map_equals_map_em_per_observation(name, k, covariance_type, rows):
    """issue 15 item 4: from the same start, fit_map's certified optimum and MAP-EM run to a
    tight tolerance agree to 1e-6 nats per observation (measured: ~1e-10)."""
    X = load_dataset(name).X
    start = _start(X, k, covariance_type, rows)
    covs = start["covariances"]
    prec = np.linalg.inv(covs) if covariance_type == "full" else 1.0 / covs
    # reg_covar=0: the prior alone regularises, as in the NumPyro model (with reg_covar, EM's
    # objective also counts -reg_covar tr(Sigma_k^-1) / 2 per observation)
    em = GaussianMixtureEM(k, covariance_type=covariance_type, prior="default", tol=1e-12,
                           reg_covar=0.0, max_iter=100000, weights_init=start["weights"],
                           means_init=start["means"], precisions_init=prec).fit(X)
    res = models.fit_map(models.gaussian_mixture, X, k, covariance_type=covariance_type,
                         prior="default", init=start)
    assert res.status == "ok" and res.diagnostics["gradient_norm"] <= 1e-6, \
        res.diagnostics["message"]
    assert abs(res.objective_trace[-1] - em.lower_bound_) / len(X) <= 1e-6
    np.testing.assert_allclose(res.params["means"], em.means_, rtol=1e-4, atol=1e-6)


def test_certified_map_equals_map_em_on_london_deaths():
    x = load_dataset("london_deaths").X
    start = {"weights": np.array([0.5, 0.5]), "rates": np.array([[1.0], [3.0]])}
    em = PoissonMixtureEM(2, prior="default", tol=1e-12, max_iter=100000,
                          weights_init=start["weights"], rates_init=start["rates"]).fit(x)
    res = models.fit_map(models.poisson_mixture, x, 2, prior="default", init=start)
    assert res.status == "ok", res.diagnostics["message"]
    assert abs(res.objective_trace[-1] - em.lower_bound_) / len(x) <= 1e-6


def test_mle_collapsing_on_a_point_is_not_converged():
    """issue 21: a component collapsing on one point makes the likelihood unbounded; fit_map
    used to return it as converged (variance 5e-7 here). The gradient along its log-variance
    never vanishes, and the model names the collapse."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0.0, 1.0, 40), [3.0]])
    start = {"weights": np.array([0.9, 0.1]), "means": np.array([[0.0], [3.0]]),
             "covariances": np.array([[[1.0]], [[1e-4]]])}
    res = models.fit_map(models.gaussian_mixture, x, 2, init=start, num_steps=500)
    assert res.method == "mle" and res.status == "not_converged" and not res.converged
    assert res.params["covariances"].ravel()[1] < 1e-12
    assert "collapsed" in res.diagnostics["degenerate"]
    assert "NOT CONVERGED" in res.diagnostics["message"]
    assert res.diagnostics["gradient_norm"] > 1e-3  # ~ the collapsed component's mass / N


def test_fit_result_status_invariant():
    fields = dict(method="map", params={}, samples=None, objective_name="log_joint",
                  objective_trace=np.zeros(1), elbo=None, elbo_se=None, inference_data=None,
                  wall_time=1.0, compile_time=0.5, n_steps=1)
    assert models.FitResult(converged=True, **fields).status == "ok"
    assert models.FitResult(converged=False, **fields).status == "not_converged"
    models.FitResult(converged=False, status="failed_to_mix", **fields)
    with pytest.raises(ValueError, match="contradicts"):
        models.FitResult(converged=False, status="ok", **fields)
    with pytest.raises(ValueError, match="contradicts"):
        models.FitResult(converged=True, status="failed_to_mix", **fields)
    with pytest.raises(ValueError, match="status must be one of"):
        models.FitResult(converged=False, status="bad", **fields)
