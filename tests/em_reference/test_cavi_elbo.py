"""CAVI's ELBO against oracles written differently: the conjugate normalisers at the M-step
(scipy), Monte Carlo over q with scipy's distributions at arbitrary factors, and the exact
evidence by enumeration (it must bound it; for one component, where mean-field q(theta) is the
exact posterior, equal it)."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import betaln, gammaln, logsumexp

from em_reference.cavi import (GaussianMixtureCAVI, PoissonMixtureCAVI, families, loop)
from em_reference.cavi.weights import WEIGHT_PRIOR_TYPES
from em_reference.priors import COVARIANCE_TYPES, GaussianMixturePrior, PoissonMixturePrior
from models import evidence_exact as exact


def _gaussian_prior(covariance_type, d, alpha=0.8):
    psi = {"full": np.eye(d) * 1.5 + 0.3, "tied": np.eye(d) * 1.5 + 0.3,
           "diag": np.linspace(0.6, 1.8, d), "spherical": 1.1}[covariance_type]
    return GaussianMixturePrior(alpha, np.linspace(-0.5, 0.5, d), 0.6, d + 1.7, psi,
                                covariance_type).validate(d, 1)


def _soft_resp(rng, n, k):
    return rng.dirichlet(np.full(k, 0.7), size=n)


def _entropy(resp):
    return -np.sum(resp * np.log(resp))


@pytest.mark.parametrize("kind", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_elbo_after_the_update_is_the_conjugate_normaliser_form(covariance_type, kind):
    """At q(pi, theta) = M-step(r): L = H(r) + log int p(pi) prod pi^N_k + sum_k log int
    p(theta_k) prod_n p(x_n | theta_k)^r_nk (conjugate normalisers, scipy)."""
    rng = np.random.default_rng(7)
    n, d, k = 25, 3, 3
    X = rng.normal(size=(n, d)) * [1.0, 2.0, 0.5]
    resp = _soft_resp(rng, n, k)
    prior = _gaussian_prior(covariance_type, d)
    family = families.GaussianCAVIFamily(covariance_type)
    stats_ = family.statistics(X, resp)
    q = loop.m_step(stats_, prior, family, kind)
    ours = float(loop.elbo(X, np.ones(n), resp, q, prior, family, kind))
    nk = resp.sum(0)
    if kind == "dirichlet_distribution":
        weights = exact.dirichlet_multinomial_log_prob(resp[None], np.full(k, 0.8))[0]
    else:  # the sticks: Beta(1 + N_k, gamma + sum_{j>k} N_j) against Beta(1, gamma)
        tail = nk[::-1].cumsum()[::-1] - nk
        weights = np.sum(betaln(1 + nk, 0.8 + tail) - betaln(1, 0.8))
    oracle = _entropy(resp) + weights + exact.gaussian_log_marginals(X, resp[None], prior)[0]
    assert ours == pytest.approx(oracle, abs=1e-9)


def test_poisson_elbo_after_the_update_is_the_conjugate_normaliser_form():
    rng = np.random.default_rng(8)
    x = rng.poisson([2.0, 7.0], size=(30, 2)).astype(float)
    resp = _soft_resp(rng, 30, 3)
    prior = PoissonMixturePrior(1.3, np.array([1.5, 2.0]), np.array([0.4, 0.9]))
    family = families.PoissonCAVIFamily()
    q = loop.m_step(family.statistics(x, resp), prior, family, "dirichlet_distribution")
    ours = float(loop.elbo(x, np.ones(30), resp, q, prior, family, "dirichlet_distribution"))
    oracle = (_entropy(resp) + exact.dirichlet_multinomial_log_prob(resp[None], np.full(3, 1.3))[0]
              + exact.poisson_log_marginals(x, resp[None], prior)[0])
    assert ours == pytest.approx(oracle, abs=1e-9)


# ---------------------------------------------------------------- Monte Carlo over q
def _sample_weights(rng, conc, kind, s):
    """Draws of pi (S, K) from q(pi) and log q(pi) - log p(pi) at them (prior alpha0 = 0.8)."""
    k = conc.shape[-1]
    if kind == "dirichlet_distribution":
        pi = rng.dirichlet(conc, size=s)
        return pi, stats.dirichlet(conc).logpdf(pi.T) - stats.dirichlet(np.full(k, 0.8)).logpdf(
            pi.T)
    v = rng.beta(conc[0], conc[1], size=(s, k))
    pi = v * np.concatenate([np.ones((s, 1)), np.cumprod(1 - v, axis=1)[:, :-1]], axis=1)
    log_ratio = np.sum(stats.beta(conc[0], conc[1]).logpdf(v) - stats.beta(1, 0.8).logpdf(v), 1)
    return pi, log_ratio


def _mvn_logpdf(x, mean, precision):
    """log N(x | mean, precision^-1), batched over leading axes (the textbook formula)."""
    d = x.shape[-1]
    diff = x - mean
    return 0.5 * (np.linalg.slogdet(precision)[1] - d * math.log(2 * math.pi)
                  - np.einsum("...i,...ij,...j->...", diff, precision, diff))


def _sample_components(rng, q, prior, covariance_type, s):
    """Draws (S, K, D) of means and (S, K, D, D) precisions from q(mu, Lambda), and
    log q - log p at them (scipy's Wishart and Gamma densities; precision coordinates for
    both)."""
    kappa, m, nu, scale = (np.asarray(a) for a in q)
    k, d = m.shape
    m0, kappa0, nu0 = prior.mean_prior, prior.mean_precision, prior.degrees_of_freedom
    psi0 = np.asarray(prior.covariance_prior)
    prec = np.zeros((s, k, d, d))
    log_ratio = np.zeros(s)
    if covariance_type in ("full", "tied"):
        # one Wishart factor per component, or one shared by all (tied)
        factors = [(nu, scale)] if covariance_type == "tied" else list(zip(nu, scale))
        for j, (nu_j, scale_j) in enumerate(factors):
            q_lam = stats.wishart(float(nu_j), np.linalg.inv(scale_j))
            lam = q_lam.rvs(size=s, random_state=rng).reshape(s, d, d)
            at = np.moveaxis(lam, 0, -1)
            log_ratio += q_lam.logpdf(at) - stats.wishart(nu0, np.linalg.inv(psi0)).logpdf(at)
            if covariance_type == "tied":
                prec[:] = lam[:, None]
            else:
                prec[:, j] = lam
    else:
        per = scale if covariance_type == "diag" else np.broadcast_to(scale[:, None], (k, d))
        nu_b = nu[:, None] * np.ones((k, d))
        lam = rng.gamma(nu_b / 2, 2 / per, size=(s, k, d))  # shape nu/2, rate Psi/2
        if covariance_type == "spherical":
            lam = np.broadcast_to(lam[:, :, :1], (s, k, d))
            log_ratio += np.sum(stats.gamma(nu / 2, scale=2 / scale).logpdf(lam[:, :, 0])
                                - stats.gamma(nu0 / 2, scale=2 / psi0).logpdf(lam[:, :, 0]), 1)
        else:
            log_ratio += np.sum(stats.gamma(nu_b / 2, scale=2 / per).logpdf(lam)
                                - stats.gamma(nu0 / 2, scale=2 / psi0).logpdf(lam), (1, 2))
        prec[..., np.arange(d), np.arange(d)] = lam
    # mu_k | Lambda_k ~ N(m_k, (kappa_k Lambda_k)^-1): drawn through the precision's Cholesky
    chol = np.linalg.cholesky(kappa[None, :, None, None] * prec)           # (S, K, D, D)
    z = rng.standard_normal((s, k, d))
    means = m + np.linalg.solve(np.swapaxes(chol, -1, -2), z[..., None])[..., 0]
    log_ratio += np.sum(_mvn_logpdf(means, m, kappa[None, :, None, None] * prec)
                        - _mvn_logpdf(means, m0, kappa0 * prec), axis=1)
    return means, prec, log_ratio


@pytest.mark.parametrize("covariance_type,kind", [("full", "dirichlet_distribution"),
                                                  ("tied", "dirichlet_process"),
                                                  ("diag", "dirichlet_distribution"),
                                                  ("spherical", "dirichlet_process")])
def test_elbo_matches_monte_carlo_at_arbitrary_factors(covariance_type, kind):
    """Away from any update: L = E_q[sum_nk r_nk (log pi_k + log N(x_n | mu_k, Lambda_k^-1))]
    - E_q[log q(pi, theta) - log p(pi, theta)] + H(r), the expectation over (pi, theta) by
    Monte Carlo (4 standard errors)."""
    rng = np.random.default_rng(11)
    n, d, k, s = 12, 2, 2, 1500
    X = rng.normal(size=(n, d))
    resp = _soft_resp(rng, n, k)
    prior = _gaussian_prior(covariance_type, d)
    family = families.GaussianCAVIFamily(covariance_type)
    q = loop.m_step(family.statistics(X, _soft_resp(rng, n, k)), prior, family, kind)
    # move every factor off the update
    comp = q.components
    q = loop.Variational(q.weights * 1.4, comp._replace(
        mean_precision=comp.mean_precision * 1.7, means=comp.means + 0.3,
        degrees_of_freedom=comp.degrees_of_freedom + 1.3, scale=comp.scale * 1.2))
    ours = float(loop.elbo(X, np.ones(n), resp, q, prior, family, kind))

    pi, log_ratio_w = _sample_weights(rng, np.asarray(q.weights), kind, s)
    means, prec, log_ratio_c = _sample_components(rng, q.components, prior, covariance_type, s)
    loglik = _mvn_logpdf(X[None, :, None, :], means[:, None], prec[:, None])   # (S, N, K)
    f = np.sum(resp * (np.log(pi)[:, None, :] + loglik), axis=(1, 2)) - log_ratio_w - log_ratio_c
    mc, se = f.mean() + _entropy(resp), f.std() / math.sqrt(s)
    assert abs(ours - mc) < 4 * se, (ours, mc, se)


# ---------------------------------------------------------------- the evidence
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_component_elbo_is_the_exact_evidence(covariance_type):
    """K = 1: q(mu, Lambda) of the conjugate update is the exact posterior and q(Z) is
    trivial, so the bound is tight: lower_bound_ = log p(X) (closed form)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 3)) @ np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0, 0, 2.0]])
    prior = _gaussian_prior(covariance_type, 3)
    fit = GaussianMixtureCAVI(1, covariance_type=covariance_type, prior=prior, tol=0.0,
                              max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit.fit(X)
    assert fit.lower_bound_ == pytest.approx(exact.gaussian_log_marginal(X, prior), abs=1e-8)


def test_one_component_poisson_elbo_is_the_exact_evidence():
    x = np.random.default_rng(4).poisson([3.0, 0.5], size=(40, 2)).astype(float)
    prior = PoissonMixturePrior(1.0, np.array([2.0, 1.0]), np.array([0.5, 2.0]))
    fit = PoissonMixtureCAVI(1, prior=prior, tol=0.0, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit.fit(x)
    assert fit.lower_bound_ == pytest.approx(exact.poisson_log_marginal(x, prior), abs=1e-8)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_elbo_bounds_the_enumerated_evidence(covariance_type):
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(-2, 1, (5, 2)), rng.normal(2, 1, (5, 2))])
    prior = _gaussian_prior(covariance_type, 2, alpha=1.0)
    evidence = exact.mixture_log_evidence(X, 2, prior)
    fit = GaussianMixtureCAVI(2, covariance_type=covariance_type, prior=prior, n_init=4,
                              tol=1e-10, max_iter=500, random_state=0).fit(X)
    assert fit.lower_bound_ <= evidence
    # a q(theta) near one of the 2! symmetric modes can get within about log 2! of log p(X)
    assert evidence - fit.lower_bound_ < 3.0


def test_poisson_elbo_bounds_the_enumerated_evidence():
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.poisson(1.0, 6), rng.poisson(8.0, 6)]).astype(float)
    prior = PoissonMixturePrior(1.0, 1.0, 0.2)
    evidence = exact.mixture_log_evidence(x, 2, prior)
    fit = PoissonMixtureCAVI(2, prior=prior, n_init=4, tol=1e-10, max_iter=500,
                             random_state=0).fit(x)
    assert evidence - 3.0 < fit.lower_bound_ <= evidence


def _set_partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _set_partitions(rest):
        for i in range(len(part)):
            yield part[:i] + [[first] + part[i]] + part[i + 1:]
        yield [[first]] + part


def test_dirichlet_process_elbo_bounds_the_dp_mixture_evidence():
    """The DP bound (nested truncation at K) is a bound on the infinite mixture's evidence:
    the sum over all set partitions of the data with the Chinese-restaurant prior."""
    x = np.array([-2.1, -1.7, -2.4, 1.9, 2.2, 2.6, 0.1])
    gamma = 0.9
    prior = GaussianMixturePrior(gamma, np.zeros(1), 0.5, 3.0, np.eye(1), "full").validate(1, 3)
    terms = []
    for part in _set_partitions(list(range(len(x)))):
        sizes = np.array([len(b) for b in part])
        crp = (len(part) * math.log(gamma) + gammaln(gamma) - gammaln(gamma + len(x))
               + np.sum(gammaln(sizes)))
        terms.append(crp + sum(exact.gaussian_log_marginal(x[b], prior) for b in part))
    evidence = float(logsumexp(terms))
    for k in (2, 3, 5):
        fit = GaussianMixtureCAVI(k, prior=prior, weight_concentration_prior_type=
                                  "dirichlet_process", n_init=3, tol=1e-10, max_iter=1000,
                                  random_state=0).fit(x)
        assert fit.lower_bound_ <= evidence
        assert evidence - fit.lower_bound_ < 4.0


def test_set_partitions_are_bell_numbers():
    assert [sum(1 for _ in _set_partitions(list(range(n)))) for n in range(1, 7)] == [
        1, 2, 5, 15, 52, 203]
    assert len({tuple(map(tuple, sorted(map(sorted, p))))
                for p in _set_partitions(list(range(5)))}) == 52


# ---------------------------------------------------------------- the posterior predictive
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_component_predictive_is_the_ratio_of_evidences(covariance_type):
    """K = 1 (q(theta) exact): score_samples(x) = log p(X, x) - log p(X), closed forms."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(15, 2)) * [1.0, 2.0] + 1.0
    new = rng.normal(size=(4, 2)) * 2.0
    prior = _gaussian_prior(covariance_type, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = GaussianMixtureCAVI(1, covariance_type=covariance_type, prior=prior, tol=0.0,
                                  max_iter=2).fit(X)
    ratio = [exact.gaussian_log_marginal(np.vstack([X, x]), prior)
             - exact.gaussian_log_marginal(X, prior) for x in new]
    np.testing.assert_allclose(fit.score_samples(new), ratio, atol=1e-9)
    assert fit.score(new) == pytest.approx(np.mean(ratio), abs=1e-9)


def test_one_component_poisson_predictive_is_the_ratio_of_evidences():
    rng = np.random.default_rng(10)
    x = rng.poisson([3.0, 1.0], size=(20, 2)).astype(float)
    new = np.array([[0.0, 0.0], [5.0, 2.0], [12.0, 0.0]])
    prior = PoissonMixturePrior(1.0, np.array([2.0, 1.0]), np.array([0.5, 2.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = PoissonMixtureCAVI(1, prior=prior, tol=0.0, max_iter=2).fit(x)
    ratio = [exact.poisson_log_marginal(np.vstack([x, v]), prior)
             - exact.poisson_log_marginal(x, prior) for v in new]
    np.testing.assert_allclose(fit.score_samples(new), ratio, atol=1e-9)
