"""What the CAVI loop needs of each mixture family (hashable: jit-static).

statistics(X, w r) -> stats;  update(stats, prior) -> q(theta);
expected_log_likelihood(X, q) -> (N, K);  expected_log_likelihood_total(stats, q);
kl(q, prior);  has_fast_path, and with it features(X) -> T(X) (N, F),
natural_parameters(q, E[log pi]) -> (F, K) and stats_from_moments(R^T T(X)).
"""

from __future__ import annotations

from dataclasses import dataclass

from em_reference.cavi import bernoulli, gaussian, gaussian_fast, poisson


@dataclass(frozen=True)
class GaussianCAVIFamily:
    """Normal-Wishart components (gaussian.py), the fast kernel in gaussian_fast.py."""

    covariance_type: str = "full"
    has_fast_path = True

    def statistics(self, X, weighted_resp):
        return gaussian.statistics(X, weighted_resp, self.covariance_type)

    def update(self, stats, prior):
        return gaussian.update(stats, prior, self.covariance_type)

    def expected_log_likelihood(self, X, q):
        return gaussian.expected_log_likelihood(X, q, self.covariance_type)

    def expected_log_likelihood_total(self, stats, q):
        return gaussian.expected_log_likelihood_total(stats, q, self.covariance_type)

    def kl(self, q, prior):
        return gaussian.kl(q, prior, self.covariance_type)

    def features(self, X):
        return gaussian_fast.features(X, self.covariance_type)

    def natural_parameters(self, q, e_log_weights):
        return gaussian_fast.natural_parameters(q, e_log_weights, self.covariance_type)

    def stats_from_moments(self, moments):
        return gaussian_fast.stats_from_moments(moments, self.covariance_type)


@dataclass(frozen=True)
class PoissonCAVIFamily:
    """Gamma rates (poisson.py); its E-step is one (N, D) x (D, K) product already, so it has
    no separate fast kernel."""

    has_fast_path = False

    def statistics(self, X, weighted_resp):
        return poisson.statistics(X, weighted_resp)

    def update(self, stats, prior):
        return poisson.update(stats, prior)

    def expected_log_likelihood(self, X, q):
        return poisson.expected_log_likelihood(X, q)

    def expected_log_likelihood_total(self, stats, q):
        return poisson.expected_log_likelihood_total(stats, q)

    def kl(self, q, prior):
        return poisson.kl(q, prior)


@dataclass(frozen=True)
class BernoulliCAVIFamily:
    """Beta pixel probabilities (bernoulli.py); its E-step is one (N, D) x (D, K) product, so
    it has no separate fast kernel."""

    has_fast_path = False

    def statistics(self, X, weighted_resp):
        return bernoulli.statistics(X, weighted_resp)

    def update(self, stats, prior):
        return bernoulli.update(stats, prior)

    def expected_log_likelihood(self, X, q):
        return bernoulli.expected_log_likelihood(X, q)

    def expected_log_likelihood_total(self, stats, q):
        return bernoulli.expected_log_likelihood_total(stats, q)

    def kl(self, q, prior):
        return bernoulli.kl(q, prior)
