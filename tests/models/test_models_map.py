"""fit_map reaches em_reference's MAP-EM optimum (and EM's MLE with prior=None) from the same
initial parameters, and stays at the MAP-EM solution when started there."""

import dataclasses
import warnings

import numpy as np
import pytest

import models
from em_reference import GaussianMixtureEM, PoissonMixtureEM

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
    for key in ("n_nonfinite", "divergences", "r_hat_max", "ess_bulk_min", "message"):
        assert key in res.diagnostics
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.method = "x"
