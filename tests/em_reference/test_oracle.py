"""An independent oracle for em_reference, written only here.

Everything on the "expected" side of these tests is plain numpy / scipy: Python loops over
components with scipy.stats densities, EM steps written from the textbook formulas, and the
MAP-EM M-step found by *numerically maximising* the expected complete-data log joint + log prior
with scipy.optimize (plus a hand derivation, itself checked against that optimum). No
em_reference function is used to compute an expected value.
"""

import jax
import numpy as np
import pytest
from scipy import optimize, special, stats
from sklearn.exceptions import ConvergenceWarning

from em_reference import (GaussianMixtureEM, GaussianMixturePrior, GaussianParams,
                          PoissonMixtureEM, PoissonMixturePrior, PoissonParams)
from em_reference import gaussian as em_gaussian
from em_reference import poisson as em_poisson

COV_TYPES = ("full", "tied", "diag", "spherical")

# jit the functional API once per call site (eager JAX compiles every primitive separately)
gaussian_log_joint = jax.jit(em_gaussian.log_joint_matrix, static_argnames="covariance_type")
gaussian_log_likelihood = jax.jit(em_gaussian.log_likelihood, static_argnames="covariance_type")
poisson_log_joint = jax.jit(em_poisson.log_joint_matrix)
poisson_log_likelihood = jax.jit(em_poisson.log_likelihood)
prior_log_prob = jax.jit(lambda prior, params: prior.log_prob(params))

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# =========================================================================== oracle (numpy/scipy)
def random_spd(rng, d, low=0.3):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + low * np.eye(d)


def random_covariances(rng, ct, k, d):
    """Arbitrary valid covariances in scikit-learn's shape for covariance type ct."""
    if ct == "full":
        return np.stack([random_spd(rng, d) for _ in range(k)])
    if ct == "tied":
        return random_spd(rng, d)
    if ct == "diag":
        return rng.uniform(0.2, 3.0, size=(k, d))
    return rng.uniform(0.2, 3.0, size=k)


def dense_covariances(cov, ct, k, d):
    """List of K (D, D) covariance matrices."""
    if ct == "full":
        return [np.asarray(cov[j]) for j in range(k)]
    if ct == "tied":
        return [np.asarray(cov)] * k
    if ct == "diag":
        return [np.diag(cov[j]) for j in range(k)]
    return [cov[j] * np.eye(d) for j in range(k)]


def precisions_of(cov, ct):
    """What a user passes as precisions_init (scikit-learn's convention)."""
    if ct in ("full", "tied"):
        return np.linalg.inv(cov)
    return 1.0 / np.asarray(cov)


def oracle_em_regulariser(cov, ct, k, d, reg_covar):
    """What EM's objective adds per component for reg_covar = r (documented in
    GaussianMixtureEM): -r tr(Sigma_k^-1) / 2, from numpy inverses of the dense covariances."""
    return np.array([-0.5 * reg_covar * np.trace(np.linalg.inv(s))
                     for s in dense_covariances(cov, ct, k, d)])


def oracle_gaussian_log_joint(X, weights, means, cov, ct, reg_covar=0.0):
    """log pi_k + log N(x_n | mu_k, Sigma_k), one scipy call per component (and dimension);
    with reg_covar, EM's log joint (+ ``oracle_em_regulariser``)."""
    n, d = X.shape
    k = len(weights)
    out = np.empty((n, k))
    for j in range(k):
        if ct in ("full", "tied"):
            sigma = cov[j] if ct == "full" else cov
            dens = stats.multivariate_normal(mean=means[j], cov=sigma).logpdf(X)
        else:  # independent coordinates: a sum of 1-D normal log densities
            var = cov[j] if ct == "diag" else np.full(d, cov[j])
            dens = sum(stats.norm(loc=means[j, i], scale=np.sqrt(var[i])).logpdf(X[:, i])
                       for i in range(d))
        out[:, j] = np.log(weights[j]) + dens
    return out + oracle_em_regulariser(cov, ct, k, d, reg_covar) if reg_covar else out


def oracle_poisson_log_joint(x, weights, rates):
    n, d = x.shape
    out = np.empty((n, len(weights)))
    for j in range(len(weights)):
        out[:, j] = np.log(weights[j]) + sum(stats.poisson(rates[j, i]).logpmf(x[:, i])
                                             for i in range(d))
    return out


def oracle_responsibilities(log_joint, hard=False):
    if hard:
        r = np.zeros_like(log_joint)
        r[np.arange(len(r)), np.argmax(log_joint, axis=1)] = 1.0
        return r
    return np.exp(log_joint - special.logsumexp(log_joint, axis=1, keepdims=True))


def oracle_gaussian_mle_m_step(X, r, ct, reg_covar, sw=None):
    """Textbook MLE M-step, one component at a time (frequency weights sw)."""
    n, d = X.shape
    k = r.shape[1]
    sw = np.ones(n) if sw is None else sw
    nk = np.array([np.sum(sw * r[:, j]) for j in range(k)])
    means = np.array([np.sum((sw * r[:, j])[:, None] * X, axis=0) / nk[j] for j in range(k)])
    scatters = []
    for j in range(k):
        diff = X - means[j]
        scatters.append((diff * (sw * r[:, j])[:, None]).T @ diff / nk[j])
    if ct == "full":
        cov = np.stack([s + reg_covar * np.eye(d) for s in scatters])
    elif ct == "tied":
        cov = sum(nk[j] * scatters[j] for j in range(k)) / nk.sum() + reg_covar * np.eye(d)
    elif ct == "diag":
        cov = np.stack([np.diag(s) for s in scatters]) + reg_covar
    else:
        cov = np.array([np.mean(np.diag(s)) for s in scatters]) + reg_covar
    return nk / nk.sum(), means, cov


def oracle_poisson_mle_m_step(x, r, sw=None):
    sw = np.ones(len(x)) if sw is None else sw
    nk = np.array([np.sum(sw * r[:, j]) for j in range(r.shape[1])])
    rates = np.array([np.sum((sw * r[:, j])[:, None] * x, axis=0) / nk[j]
                      for j in range(r.shape[1])])
    return nk / nk.sum(), rates


def scipy_gaussian_log_prior(hyper, ct, weights, means, cov):
    """The documented prior density, term by term with scipy.stats."""
    alpha, m0, kappa, nu, psi = hyper
    k, d = means.shape
    lp = stats.dirichlet(np.broadcast_to(alpha, (k,)).astype(float)).logpdf(weights)
    for j in range(k):
        if ct == "full":
            lp += stats.invwishart(df=nu, scale=psi).logpdf(cov[j])
            lp += stats.multivariate_normal(m0, cov[j] / kappa).logpdf(means[j])
        elif ct == "tied":
            lp += stats.multivariate_normal(m0, cov / kappa).logpdf(means[j])
        elif ct == "diag":
            for i in range(d):
                lp += stats.invgamma(nu / 2.0, scale=psi[i] / 2.0).logpdf(cov[j, i])
                lp += stats.norm(m0[i], np.sqrt(cov[j, i] / kappa)).logpdf(means[j, i])
        else:
            lp += stats.invgamma(nu / 2.0, scale=psi / 2.0).logpdf(cov[j])
            lp += stats.multivariate_normal(m0, cov[j] / kappa * np.eye(d)).logpdf(means[j])
    if ct == "tied":
        lp += stats.invwishart(df=nu, scale=psi).logpdf(cov)
    return float(lp)


def scipy_poisson_log_prior(hyper, weights, rates):
    alpha, a, b = hyper
    k, d = rates.shape
    lp = stats.dirichlet(np.broadcast_to(alpha, (k,)).astype(float)).logpdf(weights)
    a, b = np.broadcast_to(a, (d,)), np.broadcast_to(b, (d,))
    for j in range(k):
        for i in range(d):
            lp += stats.gamma(a[i], scale=1.0 / b[i]).logpdf(rates[j, i])
    return float(lp)


# ---- unconstrained parametrisation for the numerical MAP oracle
def _chol_size(d):
    return d * (d + 1) // 2


def _to_cov(vec, d):
    low = np.zeros((d, d))
    low[np.tril_indices(d)] = vec
    low[np.diag_indices(d)] = np.exp(np.diag(low))
    return low @ low.T


def _from_cov(cov):
    low = np.linalg.cholesky(cov)
    low[np.diag_indices(len(cov))] = np.log(np.diag(low))
    return low[np.tril_indices(len(cov))]


def pack_gaussian(weights, means, cov, ct):
    logits = np.log(weights[:-1]) - np.log(weights[-1])
    if ct == "full":
        c = np.concatenate([_from_cov(s) for s in cov])
    elif ct == "tied":
        c = _from_cov(cov)
    else:
        c = np.log(np.ravel(cov))
    return np.concatenate([logits, np.ravel(means), c])


def unpack_gaussian(theta, ct, k, d):
    logits = np.append(theta[: k - 1], 0.0)
    weights = special.softmax(logits)
    means = theta[k - 1: k - 1 + k * d].reshape(k, d)
    c = theta[k - 1 + k * d:]
    if ct == "full":
        m = _chol_size(d)
        cov = np.stack([_to_cov(c[j * m:(j + 1) * m], d) for j in range(k)])
    elif ct == "tied":
        cov = _to_cov(c, d)
    elif ct == "diag":
        cov = np.exp(c).reshape(k, d)
    else:
        cov = np.exp(c)
    return weights, means, cov


def numerical_gaussian_map(X, r, ct, hyper, start):
    """argmax_theta sum_nk r_nk log p(x_n, z=k | theta) + log p(theta), by BFGS on the scipy
    objective (numerical gradients), started from `start` (weights, means, cov)."""
    k, d = start[1].shape

    def neg(theta):
        w, mu, cov = unpack_gaussian(theta, ct, k, d)
        q = np.sum(r * oracle_gaussian_log_joint(X, w, mu, cov, ct))
        return -(q + scipy_gaussian_log_prior(hyper, ct, w, mu, cov))

    res = optimize.minimize(neg, pack_gaussian(*start, ct), method="BFGS",
                            options={"gtol": 1e-7, "maxiter": 2000})
    return unpack_gaussian(res.x, ct, k, d), -res.fun, neg


# ============================================================================= fixtures / data
N, D, K = 30, 2, 2


def gaussian_data(seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[-2.0, 0.0], [2.5, 1.0]])
    X = centers[rng.integers(0, K, size=N)] + rng.normal(size=(N, D)) * [1.0, 1.5]
    return X


def gaussian_init(ct, seed=1):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(K, 3.0))
    means = rng.normal(size=(K, D)) * 2.0
    cov = random_covariances(rng, ct, K, D)
    return weights, means, cov


def poisson_data(seed=0):
    rng = np.random.default_rng(seed)
    rates = np.array([[1.0, 4.0], [6.0, 0.5]])
    return rng.poisson(rates[rng.integers(0, 2, size=N)]).astype(float)


POISSON_INIT = (np.array([0.3, 0.7]), np.array([[2.0, 3.0], [5.0, 1.0]]))


def gaussian_prior_hyper(ct, d=D, k=K, seed=3, vector_alpha=False):
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(1.5, 4.0, size=k) if vector_alpha else 2.5
    m0 = rng.normal(size=d)
    kappa = 0.7
    nu = {"full": d + 1.5, "tied": d + 0.5, "diag": 3.0, "spherical": 2.5}[ct]
    psi = {"full": random_spd(rng, d), "tied": random_spd(rng, d),
           "diag": rng.uniform(0.5, 2.0, size=d), "spherical": 1.3}[ct]
    return alpha, m0, kappa, nu, psi


def fit_one_step(ct, init, X=None, **kw):
    w, mu, cov = init
    est = GaussianMixtureEM(K, covariance_type=ct, max_iter=1, tol=0.0, weights_init=w,
                            means_init=mu, precisions_init=precisions_of(cov, ct), **kw)
    with pytest.warns(ConvergenceWarning):
        est.fit(gaussian_data() if X is None else X)
    return est


# ================================================================ (a) log densities, log joint
@pytest.mark.parametrize("ct", COV_TYPES)
def test_gaussian_log_joint_matrix_matches_scipy_at_arbitrary_parameters(ct):
    rng = np.random.default_rng(11)
    k, d = 3, 3
    X = rng.normal(size=(25, d)) * 4.0
    weights = rng.dirichlet(np.ones(k))
    means = rng.normal(size=(k, d)) * 3.0
    cov = random_covariances(rng, ct, k, d)
    expected = oracle_gaussian_log_joint(X, weights, means, cov, ct)

    got = gaussian_log_joint(X, GaussianParams(weights, means, cov), covariance_type=ct)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-10, atol=1e-10)

    # the same through a (hand-)fitted estimator, and the derived per-sample quantities
    est = GaussianMixtureEM(k, covariance_type=ct)
    est.weights_, est.means_, est.covariances_ = weights, means, cov
    est.n_features_in_ = d
    np.testing.assert_allclose(est.log_joint_matrix(X), expected, rtol=1e-10, atol=1e-10)
    per_sample = special.logsumexp(expected, axis=1)
    np.testing.assert_allclose(est.score_samples(X), per_sample, rtol=1e-10)
    np.testing.assert_allclose(est.score(X), per_sample.mean(), rtol=1e-10)
    np.testing.assert_allclose(est.predict_proba(X), oracle_responsibilities(expected),
                               atol=1e-12)
    np.testing.assert_array_equal(est.predict(X), np.argmax(expected, axis=1))
    total = gaussian_log_likelihood(X, (weights, means, cov), covariance_type=ct)
    np.testing.assert_allclose(float(total), per_sample.sum(), rtol=1e-10)
    # BIC/AIC with scikit-learn's parameter count, counted here by hand
    n_cov = {"full": k * d * (d + 1) / 2, "tied": d * (d + 1) / 2, "diag": k * d,
             "spherical": k}[ct]
    n_par = n_cov + k * d + k - 1
    np.testing.assert_allclose(est.bic(X), -2 * per_sample.sum() + n_par * np.log(len(X)),
                               rtol=1e-10)
    np.testing.assert_allclose(est.aic(X), -2 * per_sample.sum() + 2 * n_par, rtol=1e-10)


def test_poisson_log_joint_matrix_matches_scipy_at_arbitrary_parameters():
    rng = np.random.default_rng(12)
    k, d = 3, 2
    x = rng.poisson([0.5, 9.0], size=(40, d)).astype(float)
    x[0] = [0.0, 0.0]
    x[1] = [25.0, 0.0]  # large counts: the log x! term matters
    weights = rng.dirichlet(np.ones(k))
    rates = rng.uniform(0.05, 12.0, size=(k, d))
    expected = oracle_poisson_log_joint(x, weights, rates)

    got = poisson_log_joint(x, PoissonParams(weights, rates))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-10, atol=1e-10)

    est = PoissonMixtureEM(k)
    est.weights_, est.rates_, est.n_features_in_ = weights, rates, d
    np.testing.assert_allclose(est.log_joint_matrix(x), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(est.score_samples(x), special.logsumexp(expected, axis=1),
                               rtol=1e-10)
    total = poisson_log_likelihood(x, (weights, rates))
    np.testing.assert_allclose(float(total), special.logsumexp(expected, axis=1).sum(),
                               rtol=1e-10)
    # 1-D counts are one feature
    x1 = x[:, :1]
    np.testing.assert_allclose(
        float(poisson_log_likelihood(x1[:, 0], (weights, rates[:, :1]))),
        special.logsumexp(oracle_poisson_log_joint(x1, weights, rates[:, :1]), axis=1).sum(),
        rtol=1e-10)


# ====================================================================== (b) one full EM step
ONE_STEP_CASES = [("full", 0.0), ("tied", 1e-3), ("diag", 0.0), ("spherical", 1e-3)]


@pytest.mark.parametrize("ct, reg_covar", ONE_STEP_CASES)
def test_one_gaussian_em_step_matches_oracle(ct, reg_covar):
    X = gaussian_data()
    init = gaussian_init(ct)
    est = fit_one_step(ct, init, reg_covar=reg_covar)

    log_joint0 = oracle_gaussian_log_joint(X, *init, ct, reg_covar)
    r = oracle_responsibilities(log_joint0)
    w1, mu1, cov1 = oracle_gaussian_mle_m_step(X, r, ct, reg_covar)

    assert est.n_iter_ == 1 and not est.converged_
    np.testing.assert_allclose(est.weights_, w1, rtol=1e-10)
    np.testing.assert_allclose(est.means_, mu1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(est.covariances_, cov1, rtol=1e-9, atol=1e-12)
    # precisions_ are the inverses of covariances_, precisions_cholesky_ their factor
    dense = dense_covariances(cov1, ct, K, D)
    dense_prec = [np.linalg.inv(s) for s in dense]
    if ct in ("full", "tied"):
        prec = np.stack(dense_prec) if ct == "full" else dense_prec[0]
        np.testing.assert_allclose(est.precisions_, prec, rtol=1e-8)
        pc = est.precisions_cholesky_
        np.testing.assert_allclose(pc @ np.swapaxes(pc, -1, -2), prec, rtol=1e-8)
    else:
        np.testing.assert_allclose(est.precisions_, 1.0 / cov1, rtol=1e-10)
        np.testing.assert_allclose(est.precisions_cholesky_, 1.0 / np.sqrt(cov1), rtol=1e-10)
    # the objective trace: EM's objective (the log-likelihood for reg_covar = 0) at the
    # initial, then at the updated parameters; log_likelihood_ the log-likelihood itself
    ll0 = special.logsumexp(log_joint0, axis=1).sum()
    ll1 = special.logsumexp(oracle_gaussian_log_joint(X, w1, mu1, cov1, ct, reg_covar),
                            axis=1).sum()
    np.testing.assert_allclose(est.lower_bounds_, [ll0, ll1], rtol=1e-10)
    np.testing.assert_allclose(est.lower_bound_, ll1, rtol=1e-10)
    np.testing.assert_allclose(est.log_likelihood_, special.logsumexp(
        oracle_gaussian_log_joint(X, w1, mu1, cov1, ct), axis=1).sum(), rtol=1e-10)


@pytest.mark.parametrize("ct, reg_covar", ONE_STEP_CASES)
def test_one_gaussian_em_step_is_accurate_far_from_the_origin(ct, reg_covar):
    # The same step on data (and initial means) shifted by 1e4 standard deviations, as for
    # timestamps or projected coordinates. Covariances are translation invariant and the
    # centred oracle (like scikit-learn's full-covariance M-step) keeps ~1e-12 here; a
    # second-moment form Sxx - Sx mu^T - mu Sx^T + N mu mu^T loses ~(offset / sd)^2 * eps.
    offset = 1e4
    X = gaussian_data() + offset
    w, mu, cov = gaussian_init(ct)
    init = (w, mu + offset, cov)
    est = fit_one_step(ct, init, X=X, reg_covar=reg_covar)
    log_joint0 = oracle_gaussian_log_joint(X, *init, ct, reg_covar)
    w1, mu1, cov1 = oracle_gaussian_mle_m_step(X, oracle_responsibilities(log_joint0), ct,
                                               reg_covar)
    np.testing.assert_allclose(est.means_, mu1, rtol=1e-12)
    np.testing.assert_allclose(est.covariances_, cov1, rtol=1e-9)
    np.testing.assert_allclose(est.lower_bounds_[0], special.logsumexp(log_joint0, axis=1).sum(),
                               rtol=1e-10)


def test_one_poisson_em_step_matches_oracle():
    x = poisson_data()
    est = PoissonMixtureEM(2, max_iter=1, tol=0.0, weights_init=POISSON_INIT[0],
                           rates_init=POISSON_INIT[1])
    with pytest.warns(ConvergenceWarning):
        est.fit(x)
    log_joint0 = oracle_poisson_log_joint(x, *POISSON_INIT)
    w1, rates1 = oracle_poisson_mle_m_step(x, oracle_responsibilities(log_joint0))
    np.testing.assert_allclose(est.weights_, w1, rtol=1e-10)
    np.testing.assert_allclose(est.rates_, rates1, rtol=1e-10)
    ll = [special.logsumexp(oracle_poisson_log_joint(x, *p), axis=1).sum()
          for p in (POISSON_INIT, (w1, rates1))]
    np.testing.assert_allclose(est.lower_bounds_, ll, rtol=1e-10)


def test_one_hard_em_step_matches_oracle_gaussian_diag_and_poisson():
    X = gaussian_data()
    init = gaussian_init("diag")
    est = fit_one_step("diag", init, reg_covar=1e-4, assignment="hard")
    log_joint0 = oracle_gaussian_log_joint(X, *init, "diag", 1e-4)
    r = oracle_responsibilities(log_joint0, hard=True)
    w1, mu1, cov1 = oracle_gaussian_mle_m_step(X, r, "diag", 1e-4)
    np.testing.assert_allclose(est.weights_, w1, rtol=1e-10)
    np.testing.assert_allclose(est.means_, mu1, rtol=1e-10)
    np.testing.assert_allclose(est.covariances_, cov1, rtol=1e-9)
    # hard EM's objective is the classification log-likelihood sum_n max_k log p(x_n, k)
    np.testing.assert_allclose(est.lower_bounds_[0], np.max(log_joint0, axis=1).sum(),
                               rtol=1e-10)

    x = poisson_data()
    pest = PoissonMixtureEM(2, max_iter=1, tol=0.0, weights_init=POISSON_INIT[0],
                            rates_init=POISSON_INIT[1], assignment="hard")
    with pytest.warns(ConvergenceWarning):
        pest.fit(x)
    r = oracle_responsibilities(oracle_poisson_log_joint(x, *POISSON_INIT), hard=True)
    w1, rates1 = oracle_poisson_mle_m_step(x, r)
    np.testing.assert_allclose(pest.weights_, w1, rtol=1e-10)
    np.testing.assert_allclose(pest.rates_, rates1, rtol=1e-10)


# ===================================================================== (c) one MAP-EM step
def hand_derived_gaussian_map(X, r, ct, hyper):
    """The MAP M-step, derived by hand (stationarity of the expected log joint + log prior):
    the Dirichlet mode and the Normal-inverse-Wishart (-gamma) posterior mode per component."""
    alpha, m0, kappa, nu, psi = hyper
    n, d = X.shape
    k = r.shape[1]
    alpha = np.broadcast_to(alpha, (k,))
    nk = r.sum(axis=0)
    weights = (nk + alpha - 1) / (n + alpha.sum() - k)
    means = np.array([(r[:, j] @ X + kappa * m0) / (nk[j] + kappa) for j in range(k)])
    b = []
    for j in range(k):
        diff = X - means[j]
        dm = means[j] - m0
        b.append((diff * r[:, j:j + 1]).T @ diff + kappa * np.outer(dm, dm))
    # power of 1/|Sigma|^(1/2): N_k (data) + 1 per mean prior + nu + D + 1 (inverse-Wishart)
    if ct == "full":
        cov = np.stack([(psi + b[j]) / (nk[j] + 1 + nu + d + 1) for j in range(k)])
    elif ct == "tied":
        cov = (psi + sum(b)) / (n + k + nu + d + 1)
    elif ct == "diag":  # inverse-gamma(nu/2, psi/2) = the 1-D inverse-Wishart
        cov = np.stack([(psi + np.diag(b[j])) / (nk[j] + 1 + nu + 2) for j in range(k)])
    else:  # one variance shared by D coordinates: D N_k data terms, D mean terms
        cov = np.array([(psi + np.trace(b[j])) / (d * nk[j] + d + nu + 2) for j in range(k)])
    return weights, means, cov


@pytest.mark.parametrize("ct", COV_TYPES)
def test_one_gaussian_map_em_step_is_the_numerical_maximiser(ct):
    X = gaussian_data()
    init = gaussian_init(ct)
    hyper = gaussian_prior_hyper(ct, vector_alpha=(ct in ("full", "diag")))
    prior = GaussianMixturePrior(*hyper, covariance_type=ct)
    est = fit_one_step(ct, init, reg_covar=0.0, prior=prior)
    got = (est.weights_, est.means_, est.covariances_)

    r = oracle_responsibilities(oracle_gaussian_log_joint(X, *init, ct))
    mle = oracle_gaussian_mle_m_step(X, r, ct, 0.0)  # the optimiser starts from the MLE
    opt, best, neg = numerical_gaussian_map(X, r, ct, hyper, mle)

    # nothing the optimiser found beats em_reference's M-step, and it found the same point
    value_em = -neg(pack_gaussian(*got, ct))
    assert value_em >= best - 1e-9 * abs(best)
    for g, o in zip(got, opt):
        np.testing.assert_allclose(g, o, rtol=1e-5, atol=1e-5)
    # tight agreement with the hand derivation (itself checked against the optimiser)
    hand = hand_derived_gaussian_map(X, r, ct, hyper)
    for g, h, o in zip(got, hand, opt):
        np.testing.assert_allclose(g, h, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(h, o, rtol=1e-5, atol=1e-5)
    # the trace is the log joint: log-likelihood + the scipy prior
    lj = [special.logsumexp(oracle_gaussian_log_joint(X, *p, ct), axis=1).sum()
          + scipy_gaussian_log_prior(hyper, ct, *p) for p in (init, got)]
    np.testing.assert_allclose(est.lower_bounds_, lj, rtol=1e-10)


def test_one_poisson_map_em_step_is_the_numerical_maximiser():
    x = poisson_data()
    hyper = (np.array([2.0, 3.5]), np.array([2.5, 1.5]), np.array([0.4, 2.0]))
    est = PoissonMixtureEM(2, max_iter=1, tol=0.0, weights_init=POISSON_INIT[0],
                           rates_init=POISSON_INIT[1], prior=PoissonMixturePrior(*hyper))
    with pytest.warns(ConvergenceWarning):
        est.fit(x)
    r = oracle_responsibilities(oracle_poisson_log_joint(x, *POISSON_INIT))
    k, d = POISSON_INIT[1].shape

    def unpack(theta):
        return special.softmax(np.append(theta[: k - 1], 0.0)), np.exp(theta[k - 1:]).reshape(k, d)

    def neg(theta):
        w, rates = unpack(theta)
        return -(np.sum(r * oracle_poisson_log_joint(x, w, rates))
                 + scipy_poisson_log_prior(hyper, w, rates))

    w0, rates0 = oracle_poisson_mle_m_step(x, r)
    res = optimize.minimize(neg, np.concatenate([np.log(w0[:-1] / w0[-1]), np.log(rates0).ravel()]),
                            method="BFGS", options={"gtol": 1e-8})
    w_opt, rates_opt = unpack(res.x)
    np.testing.assert_allclose(est.weights_, w_opt, rtol=1e-4)
    np.testing.assert_allclose(est.rates_, rates_opt, rtol=1e-4)
    theta_em = np.concatenate([np.log(est.weights_[:-1] / est.weights_[-1]),
                               np.log(est.rates_).ravel()])
    assert -neg(theta_em) >= -res.fun - 1e-7 * abs(res.fun)
    # hand derivation: Dirichlet mode; Gamma(a, b) posterior mode (S_kd + a - 1) / (N_k + b)
    alpha, a, b = hyper
    nk = r.sum(axis=0)
    np.testing.assert_allclose(est.weights_, (nk + alpha - 1) / (len(x) + alpha.sum() - k),
                               rtol=1e-10)
    np.testing.assert_allclose(est.rates_, (r.T @ x + a - 1) / (nk[:, None] + b), rtol=1e-10)
    lj = [special.logsumexp(oracle_poisson_log_joint(x, *p), axis=1).sum()
          + scipy_poisson_log_prior(hyper, *p) for p in (POISSON_INIT, (est.weights_, est.rates_))]
    np.testing.assert_allclose(est.lower_bounds_, lj, rtol=1e-10)


# ================================================================== (d) prior log densities
@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize("vector_alpha", [False, True])
def test_gaussian_prior_log_prob_matches_scipy(ct, vector_alpha):
    rng = np.random.default_rng(21)
    k, d = 3, 3
    hyper = gaussian_prior_hyper(ct, d=d, k=k, seed=22, vector_alpha=vector_alpha)
    prior = GaussianMixturePrior(*hyper, covariance_type=ct)
    weights = rng.dirichlet(np.ones(k))
    means = rng.normal(size=(k, d))
    cov = random_covariances(rng, ct, k, d)
    expected = scipy_gaussian_log_prior(hyper, ct, weights, means, cov)
    got = prior_log_prob(prior, GaussianParams(weights, means, cov))
    np.testing.assert_allclose(float(got), expected, rtol=1e-10)
    as_dict = prior_log_prob(prior, {"weights": weights, "means": means, "covariances": cov})
    np.testing.assert_allclose(float(as_dict), expected, rtol=1e-10)


def test_gaussian_prior_in_one_dimension_is_the_same_density_for_every_type():
    # InverseWishart(nu, psi) in 1-D is InverseGamma(nu / 2, psi / 2): all four agree
    rng = np.random.default_rng(5)
    weights, means = np.array([0.3, 0.7]), rng.normal(size=(2, 1))
    var = np.array([0.7, 2.2])
    hyper = (2.0, np.array([0.4]), 0.5, 3.0)
    full = prior_log_prob(GaussianMixturePrior(*hyper, np.array([[1.7]]), "full"),
                          GaussianParams(weights, means, var[:, None, None]))
    diag = prior_log_prob(GaussianMixturePrior(*hyper, np.array([1.7]), "diag"),
                          GaussianParams(weights, means, var[:, None]))
    sph = prior_log_prob(GaussianMixturePrior(*hyper, 1.7, "spherical"),
                         GaussianParams(weights, means, var))
    expected = (stats.dirichlet([2.0, 2.0]).logpdf(weights)
                + sum(stats.invgamma(1.5, scale=0.85).logpdf(v)
                      + stats.norm(0.4, np.sqrt(v / 0.5)).logpdf(m)
                      for v, m in zip(var, means[:, 0])))
    np.testing.assert_allclose([float(full), float(diag), float(sph)], expected, rtol=1e-10)


@pytest.mark.parametrize("vector", [False, True])
def test_poisson_prior_log_prob_matches_scipy(vector):
    rng = np.random.default_rng(31)
    k, d = 3, 2
    hyper = ((rng.uniform(0.5, 3.0, size=k), rng.uniform(0.5, 4.0, size=d),
              rng.uniform(0.1, 2.0, size=d)) if vector else (1.5, 2.0, 0.3))
    weights = rng.dirichlet(np.ones(k))
    rates = rng.uniform(0.1, 10.0, size=(k, d))
    got = prior_log_prob(PoissonMixturePrior(*hyper), PoissonParams(weights, rates))
    np.testing.assert_allclose(float(got), scipy_poisson_log_prior(hyper, weights, rates),
                               rtol=1e-10)


def test_default_priors_are_the_documented_fraley_raftery_values():
    rng = np.random.default_rng(41)
    X = rng.normal(size=(50, 3)) @ random_spd(rng, 3)
    k = 4
    cov = np.cov(X, rowvar=False)  # var(X) with n - 1, as R's var() in mclust
    for ct, scale in [("full", cov / k ** (2 / 3)), ("tied", cov / k ** (2 / 3)),
                      ("diag", np.diag(cov) / k ** (2 / 3)),
                      ("spherical", np.mean(np.diag(cov)) / k ** (2 / 3))]:
        p = GaussianMixturePrior.default(X, k, ct)
        np.testing.assert_allclose(p.mean_prior, X.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(p.covariance_prior, scale, rtol=1e-12)
        assert float(p.mean_precision) == 0.01 and float(p.degrees_of_freedom) == 5.0
        assert float(p.weight_concentration) == 1.0
    x = rng.poisson(3.0, size=(40, 2)).astype(float)
    p = PoissonMixturePrior.default(x, 2)
    np.testing.assert_allclose(p.rate_rate, [0.1, 0.1])
    np.testing.assert_allclose(p.rate_shape, 1 + 0.1 * x.mean(axis=0))


# ============================================================ sample_weight = repeated rows
def _assert_same_fit(a, b, names):
    for name in names:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-11,
                                   err_msg=name)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-10)
    assert a.n_iter_ == b.n_iter_


@pytest.mark.parametrize("ct, prior", [("full", None), ("diag", "default")])
def test_integer_sample_weights_equal_repeated_rows_gaussian(ct, prior):
    X = gaussian_data()
    counts = np.random.default_rng(7).integers(0, 4, size=N)  # zeros drop rows
    init = gaussian_init(ct)
    kw = dict(covariance_type=ct, max_iter=6, tol=0.0, prior=prior, weights_init=init[0],
              means_init=init[1], precisions_init=precisions_of(init[2], ct))
    weighted = GaussianMixtureEM(K, **kw).fit(X, sample_weight=counts)
    repeated = GaussianMixtureEM(K, **kw).fit(np.repeat(X, counts, axis=0))
    _assert_same_fit(weighted, repeated, ("weights_", "means_", "covariances_"))
    if prior is not None:
        for f in ("mean_prior", "covariance_prior"):
            np.testing.assert_allclose(getattr(weighted.prior_, f), getattr(repeated.prior_, f),
                                       rtol=1e-12)


def test_integer_sample_weights_equal_repeated_rows_poisson():
    x = poisson_data()
    counts = np.random.default_rng(8).integers(0, 4, size=N)
    kw = dict(max_iter=6, tol=0.0, prior="default", weights_init=POISSON_INIT[0],
              rates_init=POISSON_INIT[1])
    weighted = PoissonMixtureEM(2, **kw).fit(x, sample_weight=counts)
    repeated = PoissonMixtureEM(2, **kw).fit(np.repeat(x, counts, axis=0))
    _assert_same_fit(weighted, repeated, ("weights_", "rates_"))


# ======================================================== hard EM with fixed weights = k-means
def _lloyd_step(X, centers):
    labels = np.argmin(((X[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
    return np.array([X[labels == j].mean(axis=0) for j in range(len(centers))]), labels


def test_hard_em_with_fixed_equal_weights_and_variances_is_one_lloyd_step():
    X = gaussian_data()
    centers = np.array([[-1.0, -1.0], [1.0, 2.0]])
    est = GaussianMixtureEM(2, covariance_type="spherical", assignment="hard", max_iter=1,
                            tol=0.0, weights_init=[0.5, 0.5], means_init=centers,
                            precisions_init=[2.0, 2.0], fixed_params=("weights", "covariances"))
    with pytest.warns(ConvergenceWarning):
        est.fit(X)
    expected, _ = _lloyd_step(X, centers)
    np.testing.assert_allclose(est.means_, expected, rtol=1e-10)
    np.testing.assert_allclose(est.weights_, [0.5, 0.5])
    np.testing.assert_allclose(est.covariances_, [0.5, 0.5])


def test_kmeans_recipe_without_means_init_fits_and_reaches_a_lloyd_fixed_point():
    # The documented k-means recipe (hard, spherical, fixed weights and covariances) with the
    # means left to init_params. Documents a bug: MixtureEM._initial_params calls
    # family.m_step(stats, None, None) and GaussianFamily.m_step reads getattr(old, name) for
    # every fixed name, so old=None raises AttributeError before any EM work.
    X = gaussian_data()
    est = GaussianMixtureEM(2, covariance_type="spherical", assignment="hard", max_iter=50,
                            tol=1e-12, weights_init=[0.5, 0.5], precisions_init=[1.0, 1.0],
                            fixed_params=("weights", "covariances"), random_state=0)
    est.fit(X)
    np.testing.assert_allclose(est.weights_, [0.5, 0.5])
    np.testing.assert_allclose(est.covariances_, [1.0, 1.0])
    again, labels = _lloyd_step(X, est.means_)
    np.testing.assert_allclose(again, est.means_, rtol=1e-10)
    np.testing.assert_array_equal(est.predict(X), labels)
