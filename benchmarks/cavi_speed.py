"""CAVI per iteration: em_reference's GaussianMixtureCAVI against scikit-learn's
BayesianGaussianMixture on the same data, prior and initial responsibilities.

    python -m benchmarks.cavi_speed [--n 100000 --d 8 --k 8] \
        [--out benchmarks/results/cavi_speed.txt]

Seconds per iteration are marginal (benchmarks/measure.py: a fit of m2 iterations minus one of
m1, medians over interleaved rounds, so start-up, compilation and the initial M-step cancel);
scikit-learn runs with its default thread pools and with one BLAS/OpenMP thread, and the faster
is the baseline. Both start from init_params="random_from_data" with the same random_state,
which draws the same initial responsibilities, and run tol=0 for a fixed number of iterations;
the script checks that they end at the same parameters ("full": the same model). The
hand-written EM (GaussianMixtureEM, MLE) on the same data is timed beside them as a yardstick.
"""

from __future__ import annotations

import warnings

import numpy as np

from benchmarks.cases import make_data
from benchmarks.contenders import Runner
from benchmarks.measure import (interleaved_rounds, load_average, marginal_time_parser,
                                report_lines, summarize, write_report)


def _priors(X, covariance_type):
    d = X.shape[1]
    psi = {"full": np.cov(X.T), "tied": np.cov(X.T), "diag": X.var(0, ddof=1),
           "spherical": X.var(0, ddof=1).mean()}[covariance_type]
    sk = dict(weight_concentration_prior=1.0 / 8, mean_prior=X.mean(0), mean_precision_prior=1.0,
              degrees_of_freedom_prior=float(d), covariance_prior=psi)
    return sk


def runners(X, k, covariance_type):
    from sklearn.mixture import BayesianGaussianMixture
    from threadpoolctl import threadpool_limits

    from em_reference import GaussianMixtureEM
    from em_reference.cavi import GaussianMixtureCAVI
    from em_reference.priors import GaussianMixturePrior

    sk_prior = _priors(X, covariance_type)
    prior = GaussianMixturePrior(sk_prior["weight_concentration_prior"], sk_prior["mean_prior"],
                                 sk_prior["mean_precision_prior"],
                                 sk_prior["degrees_of_freedom_prior"],
                                 sk_prior["covariance_prior"], covariance_type)
    common = dict(n_components=k, covariance_type=covariance_type, tol=0.0,
                  init_params="random_from_data", random_state=0,
                  weight_concentration_prior_type="dirichlet_distribution")

    def ours(max_iter):
        est = GaussianMixtureCAVI(**common, max_iter=max_iter, prior=prior)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        return est.means_, est.covariances_

    def sklearn(threads):
        def fit(max_iter):
            est = BayesianGaussianMixture(**common, max_iter=max_iter, reg_covar=0.0, **sk_prior)
            with warnings.catch_warnings(), threadpool_limits(threads):
                warnings.simplefilter("ignore")
                est.fit(X)
            return est.means_, est.covariances_
        return fit

    def em(max_iter):
        # the hand-written EM on the same data and shapes: what one EM iteration costs here
        est = GaussianMixtureEM(k, covariance_type=covariance_type, tol=0.0, max_iter=max_iter,
                                init_params="random_from_data", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        return est.means_, est.covariances_

    return [Runner("em_reference_cavi", "float64", ours, True),
            Runner("sklearn", "float64", sklearn(None), False),
            Runner("sklearn_1t", "float64", sklearn(1), False),
            Runner("em_reference_em", "float64", em, True)]


def run(n, d, k, covariance_types, m1, m2, repeats):
    lines, say = report_lines(
        f"CAVI per iteration at (N, D, K) = ({n:,}, {d}, {k}); marginal time (m2={m2} minus "
        f"m1={m1} iterations), median of {repeats} interleaved rounds")
    X = make_data(n, d, k, seed=0)
    for ct in covariance_types:
        rs = runners(X, k, ct)
        out = interleaved_rounds(rs, m1, m2, repeats)
        s = {name: summarize(rec, m1, m2) for name, rec in out.items()}
        base = min(("sklearn", "sklearn_1t"), key=lambda r: s[r]["s_per_iter"])
        ratio = s[base]["s_per_iter"] / s["em_reference_cavi"]["s_per_iter"]
        means_ours, cov_ours = out["em_reference_cavi"]["params"]
        means_sk, cov_sk = out[base]["params"]
        diff = max(np.abs(means_ours - means_sk).max(), np.abs(cov_ours - cov_sk).max())
        say()
        say(f"covariance_type={ct}")
        for name in ("em_reference_cavi", "sklearn", "sklearn_1t", "em_reference_em"):
            r = s[name]
            say(f"  {name:18s} {1e3 * r['s_per_iter']:8.2f} ms/iter  (rounds {r['rounds']}, "
                f"min {1e3 * r['s_per_iter_min']:.2f}, iqr {1e3 * r['s_per_iter_iqr']:.2f}; "
                f"first call extra {r['first_call_extra_s']:.2f} s)")
        say(f"  speed-up vs {base}: {ratio:.1f}x per iteration (CAVI / EM per iteration: "
            f"{s['em_reference_cavi']['s_per_iter'] / s['em_reference_em']['s_per_iter']:.2f})")
        same = "same model" if ct == "full" else "scikit-learn solves another model"
        say(f"  max |difference| of means / covariances after {m2} iterations: {diff:.2e} "
            f"({same})")
    say(f"load average {load_average():.1f} at the end")
    return lines


def main(argv=None):
    a = marginal_time_parser(__doc__.splitlines()[0], m1=5, m2=55, repeats=7).parse_args(argv)
    write_report(run(a.n, a.d, a.k, a.covariance_types, a.m1, a.m2, a.repeats), a.out)


if __name__ == "__main__":
    main()
