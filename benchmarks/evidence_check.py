"""Validation of models.log_evidence (bridge sampling on NUTS draws) against the exact evidence
of tiny conjugate mixtures (models.evidence_exact: every assignment enumerated), with CAVI's
ELBO beside it.

    python -m benchmarks.evidence_check [--repeats 5] [--out benchmarks/results/evidence_check.txt]

Per problem and NUTS seed: the estimate minus the exact log p(X), the reported standard error,
the z-score; then over the seeds the largest error, the root mean square of the z-scores (about 1
when the standard error is right) and the estimate without the label-switching correction
(label_switching="none": about log K! too low). CAVI (em_reference, the same prior, best of 8
restarts) gives a bound: evidence - ELBO >= 0, the KL gap of mean-field VB over (Z, theta).
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np

import models
from em_reference.cavi import GaussianMixtureCAVI, PoissonMixtureCAVI
from em_reference.priors import GaussianMixturePrior, PoissonMixturePrior
from models import evidence_exact as exact


def _problems():
    rng = np.random.default_rng(2026)

    def gauss(d, k, n, ct, spread=2.5):
        centres = rng.normal(0, spread, (k, d))
        X = centres[np.arange(n) % k] + rng.normal(size=(n, d))
        psi = {"full": np.eye(d), "tied": np.eye(d), "diag": np.ones(d), "spherical": 1.0}[ct]
        prior = GaussianMixturePrior(1.0, np.zeros(d), 0.3, d + 2.0, psi, ct)
        return (f"gaussian {ct} D={d} K={k} N={n}", models.gaussian_mixture, X, k,
                {"covariance_type": ct, "prior": prior},
                GaussianMixtureCAVI(k, covariance_type=ct, prior=prior))

    def pois(k, n, rates):
        x = rng.poisson(np.asarray(rates)[np.arange(n) % k]).astype(float)
        prior = PoissonMixturePrior(1.0, 1.0, 0.2)
        return (f"poisson K={k} N={n}", models.poisson_mixture, x, k, {"prior": prior},
                PoissonMixtureCAVI(k, prior=prior))

    return [pois(2, 12, [1.0, 8.0]), pois(3, 10, [0.5, 5.0, 15.0]),
            gauss(1, 2, 12, "full"), gauss(1, 3, 10, "full", spread=4.0),
            gauss(2, 2, 12, "full"), gauss(2, 2, 12, "tied"), gauss(2, 2, 12, "diag"),
            gauss(2, 2, 12, "spherical")]


def run(repeats, num_samples, num_warmup, num_chains):
    lines = []
    say = lambda s="": (print(s, flush=True), lines.append(s))  # noqa: E731
    say(f"bridge sampling vs exact enumeration; NUTS {num_chains} chains x {num_samples} draws "
        f"(warmup {num_warmup}) per estimate, {repeats} seeds per problem; "
        f"{time.strftime('%Y-%m-%d %H:%M')}")
    summary = []
    for name, model, X, k, kw, cavi in _problems():
        t0 = time.perf_counter()
        truth = exact.mixture_log_evidence(X, k, kw["prior"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cavi.set_params(n_init=8, tol=1e-10, max_iter=2000, random_state=0).fit(X)
        say()
        say(f"{name}: exact log p(X) = {truth:.4f}; CAVI ELBO = {cavi.lower_bound_:.4f} "
            f"(gap {truth - cavi.lower_bound_:.3f} nats; log K! = {math.lgamma(k + 1):.3f})")
        errors, zs, plain = [], [], []
        for seed in range(repeats):
            fit = models.fit_nuts(model, X, k, **kw, num_warmup=num_warmup,
                                  num_samples=num_samples, num_chains=num_chains,
                                  chain_method="vectorized", seed=seed)
            r = models.log_evidence(model, X, k, **kw, posterior=fit, seed=seed)
            none = models.log_evidence(model, X, k, **kw, posterior=fit, seed=seed,
                                       label_switching="none")
            err = r.log_evidence - truth
            errors.append(err)
            zs.append(err / r.log_evidence_se)
            plain.append(none.log_evidence - truth)
            say(f"  seed {seed}: error {err:+.4f}  se {r.log_evidence_se:.4f}  z {zs[-1]:+.2f}  "
                f"(no label correction: {plain[-1]:+.3f}; NUTS r_hat "
                f"{fit.diagnostics['r_hat_max']:.3f}, {fit.diagnostics['divergences']} div.)")
        worst = float(np.max(np.abs(errors)))
        rms_z = float(np.sqrt(np.mean(np.square(zs))))
        say(f"  max |error| {worst:.4f} nats, rms z {rms_z:.2f}, mean error without the label "
            f"correction {np.mean(plain):+.3f} (-log K! = {-math.lgamma(k + 1):+.3f}); "
            f"{time.perf_counter() - t0:.0f} s")
        summary.append((name, worst, rms_z))
    say()
    say("summary: problem, max |error| (target 0.05 nats), rms z-score (about 1)")
    for name, worst, rms_z in summary:
        say(f"  {name:32s} {worst:.4f}  {rms_z:.2f}")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--num-samples", type=int, default=2000)
    p.add_argument("--num-warmup", type=int, default=500)
    p.add_argument("--num-chains", type=int, default=4)
    p.add_argument("--out", default=None, help="also write the report to this file")
    a = p.parse_args(argv)
    lines = run(a.repeats, a.num_samples, a.num_warmup, a.num_chains)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
