"""Every converged fit is certified: EM stops on Aitken's estimate of the distance to the
optimum and a gradient certificate (em_reference.loop), so slow EM is not stopped early.

The published optimum is the two-component Poisson mixture of London deaths (Hasselblad
1969), the example of Varadhan & Roland (2008) and of the SQUAREM package's vignette, whose
SQUAREM fit prints pi = 1 - 0.6401146 = 0.3598854, lambda = (1.2560951, 2.6634044) and
-log-likelihood 1989.946. The test recomputes that optimum independently (scipy BFGS on the
logit / log scale, scipy.stats densities; BFGS's line search leaves a gradient of a few 1e-6
nats in total, a few 1e-9 per sample) and checks both.
"""

import warnings
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats
from sklearn.exceptions import ConvergenceWarning

from em_reference import (BernoulliMixtureEM, GaussianMixtureEM, GaussianParams,
                          PoissonMixtureEM, bernoulli, gaussian, loop, poisson)
from em_reference.fast.engine import FastEngine
from em_reference.textbook import TextbookEngine

DATA = Path(__file__).resolve().parents[2] / "experiments" / "data" / "london_deaths.csv"
PUBLISHED = {"weight": 0.3598854, "rates": np.array([1.2560951, 2.6634044]),
             "neg_log_likelihood": 1989.946}  # SQUAREM vignette (rounded as printed)


@pytest.fixture(scope="module")
def london():
    df = pd.read_csv(DATA)
    return df["deaths"].to_numpy(float), df["days"].to_numpy(float)


def oracle_log_likelihood(theta, x, w):
    """theta = (logit pi, log lambda_1, log lambda_2): the two-Poisson log-likelihood by
    scipy.stats (log x! included)."""
    pi, rates = special.expit(theta[0]), np.exp(theta[1:])
    comp = np.stack([np.log(pi) + stats.poisson(rates[0]).logpmf(x),
                     np.log1p(-pi) + stats.poisson(rates[1]).logpmf(x)])
    return float(np.sum(w * special.logsumexp(comp, axis=0)))


@pytest.fixture(scope="module")
def london_mle(london):
    x, w = london
    res = optimize.minimize(lambda t: -oracle_log_likelihood(t, x, w),
                            [special.logit(0.3), np.log(1.0), np.log(2.5)], method="BFGS",
                            options={"gtol": 1e-12, "maxiter": 10_000})
    return special.expit(res.x[0]), np.exp(res.x[1:]), -res.fun


def test_the_independent_optimum_is_the_published_one(london_mle):
    pi, rates, ll = london_mle
    assert abs(pi - PUBLISHED["weight"]) < 1e-6
    np.testing.assert_allclose(rates, PUBLISHED["rates"], rtol=1e-6)
    assert round(-ll, 3) == PUBLISHED["neg_log_likelihood"]


def sorted_fit(est):
    order = np.argsort(est.rates_[:, 0])
    return est.weights_[order], est.rates_[order, 0]


def test_the_default_fit_reaches_the_published_mle(london, london_mle):
    """No tol / max_iter override: log-likelihood within 1e-6 nats, rates within 1e-5."""
    x, w = london
    pi, rates, ll = london_mle
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning either
        est = PoissonMixtureEM(2).fit(x, sample_weight=w)
    weights, got = sorted_fit(est)
    assert est.converged_ and est.gradient_norm_ <= 1.5e-8
    assert abs(est.lower_bound_ - ll) <= 1e-6 and abs(est.log_likelihood_ - ll) <= 1e-6
    np.testing.assert_allclose(got, rates, rtol=1e-5)
    np.testing.assert_allclose(got, PUBLISHED["rates"], rtol=1e-5)
    assert abs(weights[0] - pi) <= 1e-5
    assert est.n_iter_ > 100  # slow EM: the change per iteration was tiny long before here


def test_certificate_is_false_after_three_iterations_and_true_at_the_mle(london, london_mle):
    x, w = london
    pi, rates, _ = london_mle
    est = PoissonMixtureEM(2, max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning, match="gradient norm"):
        est.fit(x, sample_weight=w)
    assert not est.converged_ and est.gradient_norm_ > 1e-5
    assert est.certificate(x, sample_weight=w) == pytest.approx(est.gradient_norm_, rel=1e-8)
    # at the independent MLE: the certificate holds, and a fit started there stops at once
    est.weights_, est.rates_ = np.array([pi, 1 - pi]), rates[:, None]
    assert est.certificate(x, sample_weight=w) < 1e-8  # the oracle's own accuracy
    at_mle = PoissonMixtureEM(2, weights_init=[pi, 1 - pi], rates_init=rates).fit(
        x, sample_weight=w)
    assert at_mle.converged_ and at_mle.n_iter_ <= 4


# ------------------------------------------------------------ the gradient against differences
def flat(tree, fields):
    return np.concatenate([np.ravel(np.asarray(getattr(tree, f))) for f in fields])


def finite_difference_gradient(objective, u, fields, step=1e-5):
    """Central differences of objective(u) over every free entry of the pytree u."""
    base = {f: np.array(getattr(u, f), float) for f in u._fields}
    grads = []
    for f in fields:
        for idx in np.ndindex(base[f].shape):
            plus, minus = {k: v.copy() for k, v in base.items()}, {k: v.copy() for k, v in
                                                                    base.items()}
            plus[f][idx] += step
            minus[f][idx] -= step
            grads.append((objective(type(u)(**plus)) - objective(type(u)(**minus)))
                         / (2 * step))
    return np.array(grads)


def problems():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (40, 2)), rng.normal([3, 1], 0.5, (30, 2))]
    w = rng.integers(1, 3, size=70).astype(float)
    gparams = GaussianParams(np.array([0.4, 0.6]), np.array([[0.2, 0.1], [2.5, 0.8]]),
                             np.array([[[1.2, 0.3], [0.3, 0.9]], [[0.4, -0.1], [-0.1, 0.5]]]))
    prior = GaussianMixtureEM(2, prior="default")._default_prior(X, w).validate(2, 2)
    counts = rng.poisson([[2.0, 7.0]], size=(60, 2)).astype(float)
    bits = (rng.uniform(size=(60, 4)) < 0.4).astype(float)
    return [
        ("gaussian full, reg, prior", gaussian.GaussianFamily("full", 1e-2), X, w, gparams,
         prior, np.array([1.3, 0.7])),
        ("gaussian diag", gaussian.GaussianFamily("diag", 1e-6), X, w,
         gparams._replace(covariances=np.array([[1.2, 0.9], [0.4, 0.5]])), None, np.ones(2)),
        ("poisson", poisson.PoissonFamily(), counts, np.ones(60),
         poisson.PoissonParams(np.array([0.3, 0.7]), np.array([[1.0, 5.0], [3.0, 8.0]])),
         None, np.ones(2)),
        ("bernoulli", bernoulli.BernoulliFamily(), bits, np.ones(60),
         bernoulli.BernoulliParams(np.array([0.5, 0.5]), np.array([[0.2, 0.5, 0.7, 0.3],
                                                                    [0.6, 0.4, 0.1, 0.5]])),
         None, np.ones(4)),
    ]


@pytest.mark.parametrize("case", problems(), ids=lambda c: c[0])
def test_certificate_gradient_agrees_with_finite_differences(case):
    """At arbitrary (not fitted) parameters: the textbook engine's autodiff gradient, the fast
    kernel's Fisher-identity gradient from the moments, and central finite differences of the
    objective agree, on the unconstrained scale."""
    _, family, X, w, params, prior, scale = case
    data = (jnp.asarray(X), jnp.asarray(w))
    u = family.to_unconstrained(params, scale)
    fields = [f for f in params._fields]

    def objective(u_):
        return float(loop.objective(TextbookEngine(family), data,
                                    family.from_unconstrained(u_, scale), prior))

    fd = finite_difference_gradient(objective, u, fields)
    textbook = TextbookEngine(family)
    g_text = textbook.gradient(data, params, None, prior, scale)
    fast = FastEngine(family)
    _, moments = fast.e_step(data, params)
    g_fast = fast.gradient(data, params, moments, prior, scale)
    np.testing.assert_allclose(flat(g_text, fields), fd, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flat(g_fast, fields), flat(g_text, fields), rtol=1e-9,
                               atol=1e-9)


def test_hard_em_stops_at_a_fixed_point_of_its_assignment_step():
    """Certified hard EM: one more assignment step (numpy, from the returned parameters)
    changes no label, and the M-step from those labels returns the same means."""
    rng = np.random.default_rng(3)
    X = np.r_[rng.normal(0, 1, (80, 2)), rng.normal(4, 1, (60, 2)), rng.normal([0, 5], 1,
                                                                               (60, 2))]
    est = GaussianMixtureEM(3, covariance_type="spherical", assignment="hard", reg_covar=0.0,
                            random_state=0).fit(X)
    assert est.converged_ and np.isnan(est.gradient_norm_)
    labels = est.predict(X)
    means = np.array([X[labels == k].mean(axis=0) for k in range(3)])
    np.testing.assert_allclose(means, est.means_, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------ the stopping rule itself
def test_aitken_distance_of_a_linearly_converging_sequence_is_exact():
    """l_t = L - c a^t: Aitken's l_inf is L exactly, so the distance from l_{t-1} is c a^(t-1);
    a flat sequence has distance 0, a decreasing one no estimate (inf)."""
    L, c, a, n_total = -100.0, 5.0, 0.9, 10.0
    seq = [L - c * a**t for t in range(6)]
    state = loop.em_init(jnp.zeros(1), 3)
    for value in seq[:4]:
        distance, change = loop.aitken_distance(jnp.asarray(value), state, n_total)
        state = state._replace(objective=jnp.asarray(value), change=change)
    distance, _ = loop.aitken_distance(jnp.asarray(seq[4]), state, n_total)
    np.testing.assert_allclose(float(distance), c * a**3 / n_total, rtol=1e-9)
    flat_state = state._replace(objective=jnp.asarray(L), change=jnp.asarray(0.0))
    assert float(loop.aitken_distance(jnp.asarray(L), flat_state, n_total)[0]) == 0.0
    down = state._replace(objective=jnp.asarray(L), change=jnp.asarray(1.0))
    assert float(loop.aitken_distance(jnp.asarray(L - 1.0), down, n_total)[0]) == np.inf


def test_slow_em_is_not_stopped_early():
    """A fit whose objective changes by less than 1e-10 per sample per iteration long before
    its optimum (two heavily overlapping components): scikit-learn's rule at tol=1e-10 would
    stop; this one continues until the gradient is certified, and ends at the optimum that
    SQUAREM (a different route) also certifies."""
    rng = np.random.default_rng(5)
    x = np.r_[rng.normal(0, 1, 150), rng.normal(0.6, 1, 150)]
    plain = GaussianMixtureEM(2, random_state=0).fit(x)
    fast = GaussianMixtureEM(2, random_state=0, acceleration="squarem").fit(x)
    steps = np.diff(plain.lower_bounds_) / len(x)
    first_tiny = int(np.argmax(steps < 1e-10))
    assert plain.converged_ and fast.converged_
    assert first_tiny < plain.n_iter_ - 10
    np.testing.assert_allclose(np.sort(plain.means_.ravel()), np.sort(fast.means_.ravel()),
                               atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"acceleration": "aitken"}, r"acceleration must be one of \(None, 'squarem'\)"),
    ({"cert_tol": 0.0}, "cert_tol must be None"),
    ({"cert_tol": -1e-8}, "cert_tol must be None"),
    ({"cert_tol": float("nan")}, "cert_tol must be None"),
    ({"acceleration": "squarem", "assignment": "hard"}, "hard EM"),
])
def test_bad_acceleration_and_certificate_tolerance(kwargs, match):
    X = np.random.default_rng(0).normal(size=(20, 2))
    for est in (GaussianMixtureEM(2, **kwargs), BernoulliMixtureEM(2, **kwargs)):
        data = X if isinstance(est, GaussianMixtureEM) else (X > 0).astype(float)
        with pytest.raises(ValueError, match=match):
            est.fit(data)
