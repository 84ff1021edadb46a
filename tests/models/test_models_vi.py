"""fit_vi's ELBO is a lower bound on the evidence, checked against conjugate models whose
evidence is computed here by hand (scipy special functions only); its plateau test is
calibrated against the ELBO's Monte-Carlo error, and its status says whether it held."""

import numpy as np
import pytest
from scipy.special import gammaln, multigammaln

import models
from em_reference import GaussianMixturePrior, PoissonMixturePrior
from models.diagnostics import window_plateau

# Normal-inverse-Wishart hyper-parameters of the single-Gaussian check (D = 2)
M0, KAPPA0, NU0, PSI0 = np.array([0.5, -1.0]), 0.5, 5.0, np.array([[2.0, 0.3], [0.3, 1.0]])
A0, B0 = 2.0, 0.5  # Gamma(shape, rate) of the single-Poisson check


def niw_log_evidence(X):
    """log p(X) for x_n ~ N(mu, S), mu | S ~ N(m0, S / kappa0), S ~ IW(nu0, Psi0)
    (Murphy 2007, 'Conjugate Bayesian analysis of the Gaussian distribution', eq. 266)."""
    n, d = X.shape
    xbar = X.mean(0)
    scatter = (X - xbar).T @ (X - xbar)
    kappa_n, nu_n = KAPPA0 + n, NU0 + n
    dev = (xbar - M0)[:, None]
    psi_n = PSI0 + scatter + KAPPA0 * n / kappa_n * dev @ dev.T
    return (-0.5 * n * d * np.log(np.pi) + multigammaln(0.5 * nu_n, d)
            - multigammaln(0.5 * NU0, d) + 0.5 * NU0 * np.linalg.slogdet(PSI0)[1]
            - 0.5 * nu_n * np.linalg.slogdet(psi_n)[1] + 0.5 * d * np.log(KAPPA0 / kappa_n))


def gamma_poisson_log_evidence(x):
    """log p(x) for x_n ~ Poisson(l), l ~ Gamma(a0, b0): the negative-binomial marginal."""
    n, s = len(x), x.sum()
    return (A0 * np.log(B0) - gammaln(A0) + gammaln(A0 + s) - (A0 + s) * np.log(B0 + n)
            - gammaln(x + 1).sum())


@pytest.fixture(scope="module")
def gaussian_200():
    rng = np.random.default_rng(11)
    return rng.multivariate_normal([1.0, -0.5], [[1.5, 0.4], [0.4, 0.8]], size=200)


@pytest.fixture(scope="module")
def counts_200():
    return np.random.default_rng(12).poisson(3.5, size=200).astype(float)


def check_bound(res, log_evidence, max_gap=None):
    assert res.objective_name == "elbo_vi" and res.elbo_se > 0
    assert res.elbo <= log_evidence + 3 * res.elbo_se, (res.elbo, log_evidence)
    if max_gap is not None:
        assert log_evidence - res.elbo < max_gap, (res.elbo, log_evidence)


def test_gaussian_elbo_bounds_the_evidence(gaussian_200):
    prior = GaussianMixturePrior(1.0, M0, KAPPA0, NU0, PSI0, "full")
    res = models.fit_vi(models.gaussian_mixture, gaussian_200, 1, covariance_type="full",
                        prior=prior, guide="full_rank", num_samples=500)
    check_bound(res, niw_log_evidence(gaussian_200), max_gap=0.5)
    assert res.method == "vi_full_rank"
    # samples from the guide, the point estimate is their mean, ArviZ sees one chain
    assert res.samples["covariances"].shape == (500, 1, 2, 2)
    assert res.samples["weights"].shape == (500, 1)  # K = 1: the deterministic site
    np.testing.assert_allclose(res.params["means"], res.samples["means"].mean(0))
    assert res.inference_data.posterior["means"].shape == (1, 500, 1, 2)
    np.testing.assert_allclose(res.params["means"][0], gaussian_200.mean(0), atol=0.1)


@pytest.mark.parametrize("guide", ["mean_field", "full_rank", "low_rank", "dais"])
def test_poisson_elbo_bounds_the_evidence(counts_200, guide):
    prior = PoissonMixturePrior(1.0, A0, B0)
    res = models.fit_vi(models.poisson_mixture, counts_200, 1, prior=prior, guide=guide,
                        n_restarts=2)
    check_bound(res, gamma_poisson_log_evidence(counts_200), max_gap=0.5)
    assert res.diagnostics["restart_objectives"].shape == (2,)
    posterior_mean = (A0 + counts_200.sum()) / (B0 + len(counts_200))
    assert res.params["rates"][0, 0] == pytest.approx(posterior_mean, rel=0.02)


def test_dais_takes_its_options_and_bad_ones_are_refused(counts_200):
    prior = PoissonMixturePrior(1.0, A0, B0)
    res = models.fit_vi(models.poisson_mixture, counts_200, 1, prior=prior, guide="dais",
                        guide_options={"K": 2, "base_dist": "cholesky"}, num_steps=1000)
    assert res.method == "vi_dais"
    assert res.diagnostics["guide_params"]["auto_z_0_scale_tril"].ndim == 2  # cholesky base
    check_bound(res, gamma_poisson_log_evidence(counts_200), max_gap=0.5)
    for options, message in (({"K": 0}, "K"), ({"steps": 3}, "not accepted by AutoDAIS"),
                             ([("K", 2)], "must be a dict")):
        with pytest.raises(ValueError, match=message):
            models.fit_vi(models.poisson_mixture, counts_200, 1, prior=prior, guide="dais",
                          guide_options=options)


def test_iaf_starts_at_the_given_start_and_bounds_the_evidence(gaussian_200):
    prior = GaussianMixturePrior(1.0, M0, KAPPA0, NU0, PSI0, "full")
    start = {"means": np.array([[3.0, 2.0]]), "covariances": np.eye(2)[None]}
    # one step: q is still centred on the start, up to the randomly initialised flows' own
    # small shifts (NumPyro's AutoIAFNormal would be centred at 0)
    first = models.fit_vi(models.gaussian_mixture, gaussian_200, 1, covariance_type="full",
                          prior=prior, guide="iaf", init=start, num_steps=1, window=1,
                          elbo_particles=10)
    np.testing.assert_allclose(first.params["means"][0], [3.0, 2.0], atol=0.15)
    res = models.fit_vi(models.gaussian_mixture, gaussian_200, 1, covariance_type="full",
                        prior=prior, guide="iaf", init=start, num_samples=500)
    assert res.method == "vi_iaf"
    check_bound(res, niw_log_evidence(gaussian_200), max_gap=0.5)
    np.testing.assert_allclose(res.params["means"][0], gaussian_200.mean(0), atol=0.1)
    with pytest.raises(ValueError, match="latent dim = 1"):  # a flow needs two dimensions
        models.fit_vi(models.poisson_mixture, np.arange(5.0), 1,
                      prior=PoissonMixturePrior(1.0, A0, B0), guide="iaf")


# --- the ELBO plateau test: calibrated against its Monte-Carlo error -----------------------

def _pass_rate(make_pair, n=300, tol=0.0, k=2.0):
    rng = np.random.default_rng(17)
    return np.mean([window_plateau(*make_pair(rng), tol, k)[0] for _ in range(n)])


def _ar1(rng, n, rho):
    e = rng.normal(size=n) * np.sqrt(1 - rho**2)
    x = np.empty(n)
    x[0] = rng.normal()
    for t in range(1, n):
        x[t] = rho * x[t - 1] + e[t]
    return x


def test_plateau_test_holds_at_a_plateau_at_its_nominal_rate():
    """No change in the mean: k = 2 standard errors pass ~95% of window pairs, for independent
    estimates and for strongly autocorrelated ones (whose naive iid standard error would be
    ~4x too small)."""
    iid = _pass_rate(lambda rng: (rng.normal(size=500), rng.normal(size=500)))
    assert 0.88 <= iid <= 0.995, iid
    ar = _pass_rate(lambda rng: np.split(_ar1(rng, 1000, 0.9), 2))
    assert 0.85 <= ar <= 0.995, ar


def test_plateau_test_rejects_a_climb():
    """A steady climb of 0.01 nats per step under unit noise: the windows' means differ by
    5 nats, ~50 standard errors; the detrending keeps the climb out of the noise estimate."""
    def climb(rng):
        x = -0.01 * np.arange(1000) + rng.normal(size=1000)
        return x[:500], x[500:]
    assert _pass_rate(climb, n=50) == 0.0
    noiseless = -1e-3 * np.arange(1000.0)  # 0.5 nats per window, no noise at all
    passed, delta, se = window_plateau(noiseless[:500], noiseless[500:], 0.01, 2.0)
    assert not passed and delta == pytest.approx(-0.5) and se == pytest.approx(0.0, abs=1e-9)
    assert window_plateau(noiseless[:500], noiseless[500:], 1.0, 2.0)[0]  # tol in nats


def test_vi_status_says_whether_the_elbo_plateaued(counts_200):
    prior = PoissonMixturePrior(1.0, A0, B0)
    far = {"rates": np.array([[60.0]])}  # the posterior mean is ~3.5
    short = models.fit_vi(models.poisson_mixture, counts_200, 1, prior=prior, init=far,
                          num_steps=200, window=100, learning_rate=0.005)
    d = short.diagnostics
    assert short.status == "not_converged" and not short.converged
    assert "NOT CONVERGED" in d["message"] and short.n_steps == 200
    assert abs(d["plateau_change"]) > d["plateau_tol"] + d["plateau_k"] * d["plateau_change_se"]
    long = models.fit_vi(models.poisson_mixture, counts_200, 1, prior=prior, init=far,
                         num_steps=20000, window=200, learning_rate=0.02)
    d = long.diagnostics
    assert long.status == "ok" and long.converged and long.n_steps < 20000, d["message"]
    assert abs(d["plateau_change"]) <= d["plateau_tol"] + d["plateau_k"] * d["plateau_change_se"]
    check_bound(long, gamma_poisson_log_evidence(counts_200), max_gap=0.5)


# --- Renyi / IWAE objectives: a tighter bound, and q still judged by the standard ELBO -------

# three zero counts and a Gamma(1, 1) prior: the posterior of the rate is Exponential(4), whose
# log is far from normal, so a log-normal q has a visible gap (the best one: 0.081 nats)
ZEROS, A1, B1 = np.zeros(3), 1.0, 1.0


def lognormal_elbo(x, a, b, m, s):
    """The ELBO, in closed form, of q(log l) = N(m, s^2) for x_n ~ Poisson(l), l ~ Gamma(a, b):
    E_q[log p(x, u)] + H(q) on u = log l, where log p(x, u) = (S + a) u - (n + b) e^u + const
    (the Jacobian e^u included) and E_q[e^u] = exp(m + s^2 / 2)."""
    n, total = len(x), x.sum()
    return ((total + a) * m - (n + b) * np.exp(m + s * s / 2) + a * np.log(b) - gammaln(a)
            - gammaln(x + 1).sum() + 0.5 * np.log(2 * np.pi * np.e * s * s))


def _lognormal_params(res):
    g = res.diagnostics["guide_params"]
    return float(np.ravel(g["rates_auto_loc"])[0]), float(np.ravel(g["rates_auto_scale"])[0])


def test_iwae_objective_is_tighter_and_its_elbo_is_the_standard_bound():
    from scipy.optimize import minimize

    prior = PoissonMixturePrior(1.0, A1, B1)
    n, total = len(ZEROS), ZEROS.sum()
    log_ev = (A1 * np.log(B1) - gammaln(A1) + gammaln(A1 + total)
              - (A1 + total) * np.log(B1 + n))
    best = -minimize(lambda p: -lognormal_elbo(ZEROS, A1, B1, p[0], np.exp(p[1])), [0, 0]).fun
    plain = models.fit_vi(models.poisson_mixture, ZEROS, 1, prior=prior, n_restarts=1)
    iwae = models.fit_vi(models.poisson_mixture, ZEROS, 1, prior=prior, n_restarts=1,
                         objective="renyi", alpha=0.0, num_particles=8)
    assert iwae.method == "vi_mean_field_renyi" and iwae.objective_name == "iwae_vi"
    assert iwae.status == "ok", iwae.diagnostics["message"]
    d = iwae.diagnostics
    assert d["renyi_particles"] == 8 and d["renyi_alpha"] == 0.0
    # the reported ELBO of either q is the standard one: the closed form at its parameters
    for res in (plain, iwae):
        m, s = _lognormal_params(res)
        assert res.elbo == pytest.approx(lognormal_elbo(ZEROS, A1, B1, m, s),
                                         abs=4 * res.elbo_se)
    # the ELBO-trained q reaches the best log-normal ELBO; the IWAE-trained one falls short
    # of it (it maximises another objective) but its IWAE-8 bound is tighter than any ELBO
    assert plain.elbo == pytest.approx(best, abs=4 * plain.elbo_se + 0.005)
    assert iwae.elbo < best - 0.01
    assert d["renyi_bound"] > best + 0.02 and d["renyi_bound_se"] > 0
    assert d["renyi_bound"] <= log_ev + 3 * d["renyi_bound_se"]
    assert "IWAE-8 bound plateau" in d["message"]


def test_renyi_alpha_orders_the_bounds_and_bad_choices_are_refused(counts_200):
    prior = PoissonMixturePrior(1.0, A1, B1)
    half = models.fit_vi(models.poisson_mixture, ZEROS, 1, prior=prior, n_restarts=1,
                         objective="renyi", alpha=0.5, num_particles=4, num_steps=3000,
                          elbo_particles=20_000)  # the two bounds differ by ~0.016 nats
    assert half.objective_name == "renyi_vi" and "Renyi(alpha=0.5)-4 bound" in (
        half.diagnostics["message"])
    # ELBO <= Renyi(0.5)-4 <= log p(X) at the same q
    log_ev = -(A1 + 0) * np.log(B1 + 3)
    d = half.diagnostics
    assert half.elbo < d["renyi_bound"] <= log_ev + 3 * d["renyi_bound_se"]
    for options, message in (({"objective": "iwae"}, "objective must be one of"),
                             ({"objective": "renyi", "alpha": 1.0}, "alpha must be"),
                             ({"objective": "renyi", "alpha": -0.5}, "alpha must be"),
                             ({"objective": "renyi", "num_particles": 1}, ">= 2 draws")):
        with pytest.raises(ValueError, match=message):
            models.fit_vi(models.poisson_mixture, counts_200, 1, prior=prior, **options)
