"""Exact log evidence log p(X) of conjugate mixtures, by enumerating every assignment.

For the priors of em_reference.priors the evidence given the assignments z is closed form, and

    p(X) = sum_z p(z) p(X | z),
    p(z) = Gamma(A) / Gamma(A + N) prod_k Gamma(alpha_k + N_k) / Gamma(alpha_k)   (A = sum alpha)

(the Dirichlet-multinomial), so for K^N small enough (tiny data) the sum runs over all K^N
assignments. It is a reference for judging estimators of the evidence (bridge sampling, ELBOs);
it shares no code with them (numpy / scipy only).

Marginals p(X | z) = prod_k p(X_k) of the samples X_k assigned to component k (n_k of them, mean
x̄_k, scatter C_k about it), from the conjugate prior's normalisers (Murphy 2007, "Conjugate
Bayesian analysis of the Gaussian distribution", eq. 266 and sec. 6):

    full    log p(X_k) = -n D/2 log pi + log Gamma_D(nu_n/2) - log Gamma_D(nu0/2)
                         + nu0/2 log|Psi0| - nu_n/2 log|Psi_n| + D/2 log(kappa0 / kappa_n)
            kappa_n = kappa0 + n, nu_n = nu0 + n, Psi_n = Psi0 + C + kappa0 n/kappa_n (x̄-m0)(x̄-m0)^T
    tied    one covariance for all components: the same with nu_N = nu0 + N, Psi_N = Psi0 +
            sum_k [C_k + kappa0 n_k/kappa_k (x̄_k - m0)(..)^T] and prod_k (kappa0/kappa_k)^(D/2)
    diag    the product over dimensions of the one-dimensional case of "full"
    sph.    a_n = nu0/2 + n D/2, b_n = Psi0/2 + (tr C + kappa0 n/kappa_n ||x̄ - m0||^2)/2:
            log p = -n D/2 log(2 pi) + D/2 log(kappa0/kappa_n) + a0 log b0 - log Gamma(a0)
                    + log Gamma(a_n) - a_n log b_n           (a0 = nu0/2, b0 = Psi0/2)
    Poisson log p(X_k) = sum_d [a log b - log Gamma(a) + log Gamma(a + S_d) - (a + S_d) log(b + n)]
                         - sum_n sum_d log x_nd!               (S_d = sum of the counts)
    Bernoulli log p(X_k) = sum_d [log B(a + S_d, b + n - S_d) - log B(a, b)]   (S_d = ones, pixel d)
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.special import betaln, gammaln, logsumexp, multigammaln

# K^N assignments beyond this take too long (and too much memory) to enumerate
MAX_ASSIGNMENTS = 2**22


def _as_samples(X):
    X = np.asarray(X, dtype=float)
    return X[:, None] if X.ndim == 1 else X


def gaussian_log_marginal(X, prior):
    """log p(X) of one Gaussian component under the prior (its weights unused). X (n, D)."""
    X = _as_samples(X)
    return float(gaussian_log_marginals(X[None], np.ones((1, len(X), 1)), prior)[0])


def poisson_log_marginal(x, prior):
    """log p(x) of one Poisson component (log x! included). x (n,) or (n, D) counts."""
    x = _as_samples(x)
    return float(poisson_log_marginals(x, np.ones((1, len(x), 1)), prior)[0])


def bernoulli_log_marginal(x, prior):
    """log p(x) of one Bernoulli component (Beta-Bernoulli). x (n,) or (n, D) of 0/1."""
    x = _as_samples(x)
    return float(bernoulli_log_marginals(x, np.ones((1, len(x), 1)), prior)[0])


def _moments(X, onehot):
    """Counts (A, K), means (A, K, D) and scatter (A, K, D, D) of every assignment."""
    n = onehot.sum(axis=1)
    sums = np.einsum("ank,nd->akd", onehot, X)
    means = sums / np.maximum(n, 1e-300)[..., None]
    second = np.einsum("ank,nd,ne->akde", onehot, X, X)
    scatter = second - n[..., None, None] * means[..., :, None] * means[..., None, :]
    return n, means, scatter


def gaussian_log_marginals(X, onehot, prior):
    """sum_k log p(X_k) for every assignment: X (1, N, D) or (N, D), onehot (A, N, K) -> (A,).

    Soft assignments (rows of r on the simplex) give log prod_k int p(theta_k)
    prod_n p(x_n | theta_k)^(r_nk) dtheta_k, the same formulas with fractional counts."""
    X = X.reshape(-1, X.shape[-1])
    d = X.shape[1]
    n, means, scatter = _moments(X, onehot)
    m0, kappa0 = np.asarray(prior.mean_prior, float), float(prior.mean_precision)
    nu0, psi0 = float(prior.degrees_of_freedom), np.asarray(prior.covariance_prior, float)
    kappa = kappa0 + n
    diff = means - m0
    shrink = (kappa0 * n / kappa)[..., None, None] * diff[..., :, None] * diff[..., None, :]
    ct = prior.covariance_type
    means_term = 0.5 * d * np.sum(np.log(kappa0) - np.log(kappa), axis=1)
    if ct in ("full", "tied"):
        psi_k = scatter + shrink
        logdet0 = np.linalg.slogdet(psi0)[1]
        if ct == "full":
            nu_n, psi_n, count = nu0 + n, psi0 + psi_k, n             # per component (A, K)
        else:  # one covariance, pooled over the components: (A,)
            nu_n, psi_n, count = nu0 + n.sum(axis=1), psi0 + psi_k.sum(axis=1), n.sum(axis=1)
        per = (-0.5 * d * np.log(np.pi) * count
               + multigammaln_vec(0.5 * nu_n, d) - multigammaln(0.5 * nu0, d)
               + 0.5 * nu0 * logdet0 - 0.5 * nu_n * np.linalg.slogdet(psi_n)[1])
        return (np.sum(per, axis=1) if ct == "full" else per) + means_term
    spread = np.diagonal(scatter + shrink, axis1=-2, axis2=-1)  # (A, K, D)
    n_samples = np.sum(onehot, axis=(1, 2))
    if ct == "diag":
        a0, b0 = 0.5 * nu0, 0.5 * psi0                           # b0 (D,)
        a_n = a0 + 0.5 * n[..., None]
        b_n = b0 + 0.5 * spread
        per = a0 * np.log(b0) - gammaln(a0) + gammaln(a_n) - a_n * np.log(b_n)
        return (-0.5 * d * n_samples * np.log(2 * np.pi) + means_term
                + np.sum(per, axis=(1, 2)))
    a0, b0 = 0.5 * nu0, 0.5 * float(psi0)
    a_n = a0 + 0.5 * d * n
    b_n = b0 + 0.5 * spread.sum(axis=-1)
    per = a0 * np.log(b0) - gammaln(a0) + gammaln(a_n) - a_n * np.log(b_n)
    return -0.5 * d * n_samples * np.log(2 * np.pi) + means_term + np.sum(per, axis=1)


def multigammaln_vec(a, d):
    """log Gamma_D(a) elementwise (scipy's multigammaln takes one number at a time)."""
    a = np.asarray(a, dtype=float)
    j = np.arange(d)
    return 0.25 * d * (d - 1) * np.log(np.pi) + np.sum(gammaln(a[..., None] - 0.5 * j), axis=-1)


def poisson_log_marginals(x, onehot, prior):
    """sum_k log p(x_k) for every assignment: x (N, D), onehot (A, N, K) -> (A,) (soft
    assignments as in gaussian_log_marginals)."""
    a = np.broadcast_to(np.asarray(prior.rate_shape, float), (x.shape[1],))
    b = np.broadcast_to(np.asarray(prior.rate_rate, float), (x.shape[1],))
    n = onehot.sum(axis=1)                                        # (A, K)
    sums = np.einsum("ank,nd->akd", onehot, x)                    # (A, K, D)
    per = (a * np.log(b) - gammaln(a) + gammaln(a + sums)
           - (a + sums) * np.log(b + n[..., None]))
    return np.sum(per, axis=(1, 2)) - np.sum(gammaln(x + 1.0))


def bernoulli_log_marginals(x, onehot, prior):
    """sum_k log p(x_k) for every assignment: x (N, D) of 0/1, onehot (A, N, K) -> (A,) (soft
    assignments as in gaussian_log_marginals)."""
    a = np.broadcast_to(np.asarray(prior.probs_concentration1, float), (x.shape[1],))
    b = np.broadcast_to(np.asarray(prior.probs_concentration0, float), (x.shape[1],))
    n = onehot.sum(axis=1)                                        # (A, K)
    ones = np.einsum("ank,nd->akd", onehot, x)                    # (A, K, D)
    per = betaln(a + ones, b + n[..., None] - ones) - betaln(a, b)
    return np.sum(per, axis=(1, 2))


def dirichlet_multinomial_log_prob(onehot, alpha):
    """Dirichlet-multinomial log p(z) = log C(alpha) - log C(alpha + N) of every assignment
    onehot (A, N, K) (soft ones: the counts N_k = sum_n r_nk); alpha (K,) -> (A,)."""
    n = onehot.sum(axis=1)
    return (gammaln(alpha.sum()) - gammaln(alpha.sum() + n.sum(axis=1))
            + np.sum(gammaln(alpha + n) - gammaln(alpha), axis=1))


def _marginals_of(prior):
    """The family's log p(X | z) of every assignment, from the prior's class."""
    from em_reference.priors import (BernoulliMixturePrior, GaussianMixturePrior,
                                     PoissonMixturePrior)

    for cls, marginals in ((GaussianMixturePrior, gaussian_log_marginals),
                           (PoissonMixturePrior, poisson_log_marginals),
                           (BernoulliMixturePrior, bernoulli_log_marginals)):
        if isinstance(prior, cls):
            return marginals
    raise ValueError(f"no exact evidence for a prior of type {type(prior).__name__}")


def mixture_log_evidence(X, n_components, prior, batch=2**14):
    """Exact log p(X) of a Dirichlet-weighted conjugate mixture by enumerating the K^N
    assignments. prior: an em_reference GaussianMixturePrior (any covariance type) or
    PoissonMixturePrior or BernoulliMixturePrior; X (N,) or (N, D) (counts for Poisson, 0/1
    for Bernoulli). ValueError when K^N exceeds
    MAX_ASSIGNMENTS (about N = 22 for K = 2, N = 13 for K = 3)."""
    X = _as_samples(X)
    n, k = X.shape[0], int(n_components)
    if k ** n > MAX_ASSIGNMENTS:
        raise ValueError(f"{k}^{n} assignments is too many to enumerate (limit "
                         f"{MAX_ASSIGNMENTS}); use a smaller data set")
    marginals = _marginals_of(prior)
    alpha = np.broadcast_to(np.asarray(prior.weight_concentration, float), (k,))
    eye = np.eye(k)
    parts = []
    labels = itertools.product(range(k), repeat=n)
    while True:
        chunk = np.array(list(itertools.islice(labels, batch)), dtype=int)
        if chunk.size == 0:
            break
        onehot = eye[chunk]                                       # (A, N, K)
        parts.append(dirichlet_multinomial_log_prob(onehot, alpha) + marginals(X, onehot, prior))
    return float(logsumexp(np.concatenate(parts)))

