"""16 restarts: em_reference (one vmapped fit) against scikit-learn's GaussianMixture(n_init=16)
on the same data and starts, and against the arithmetic floor, all measured in this run.

    python -m benchmarks.restarts_sklearn [--n 100000 --d 8 --k 8 --n-init 16] \
        [--out benchmarks/results/restarts_sklearn.txt]

Seconds per iteration are marginal (benchmarks/measure.py: a fit of m2 iterations minus one of
m1, medians over interleaved rounds): start-up, compilation, the starts and the initial M-step
cancel, and what is left is one EM iteration of all n_init restarts. Both start from
init_params="random_from_data" with tol=0 and a fixed number of iterations; scikit-learn runs
with its default thread pools and with one BLAS/OpenMP thread, the faster is the baseline. The
floor (benchmarks.cases.restarts_floor_s) is the iteration's two products at the matmul peak
and its exps at the faster exp rate, both measured here (benchmarks.worker.job_machine).
"""

from __future__ import annotations

import warnings

from benchmarks.cases import make_data, restarts_floor_s
from benchmarks.contenders import Runner
from benchmarks.measure import (interleaved_rounds, load_average, marginal_time_parser,
                                report_lines, summarize, write_report)


def runners(X, k, covariance_type, n_init):
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    from em_reference import GaussianMixtureEM

    common = dict(n_components=k, covariance_type=covariance_type, tol=0.0, n_init=n_init,
                  init_params="random_from_data", random_state=0)

    def ours(max_iter):
        est = GaussianMixtureEM(**common, max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        return est  # scored after timing

    def sklearn(threads):
        def fit(max_iter):
            est = GaussianMixture(**common, max_iter=max_iter)
            with warnings.catch_warnings(), threadpool_limits(threads):
                warnings.simplefilter("ignore")
                est.fit(X)
            return est
        return fit

    return [Runner("em_reference", "float64", ours, True),
            Runner("sklearn", "float64", sklearn(None), False),
            Runner("sklearn_1t", "float64", sklearn(1), False)]


def run(n, d, k, n_init, covariance_types, m1, m2, repeats):
    from benchmarks.worker import job_machine

    lines, say = report_lines(
        f"{n_init} restarts per iteration at (N, D, K) = ({n:,}, {d}, {k}); marginal time "
        f"(m2={m2} minus m1={m1} iterations), median of {repeats} interleaved rounds")
    machine = job_machine({"n": 3000, "repeats": 3})
    peak = machine["peak_gflops_float64"]
    exp_ns = min(machine["xla_exp_ns_float64"], machine["estep_exp_ns_float64"])
    say(f"measured here: matmul peak {peak:.0f} GFLOP/s, exp {exp_ns:.2f} ns per value")
    X = make_data(n, d, k, seed=0)
    for ct in covariance_types:
        out = interleaved_rounds(runners(X, k, ct, n_init), m1, m2, repeats)
        s = {name: summarize(rec, m1, m2) for name, rec in out.items()}
        base = min(("sklearn", "sklearn_1t"), key=lambda r: s[r]["s_per_iter"])
        ours = s["em_reference"]["s_per_iter"]
        floor = restarts_floor_s(n, d, k, ct, n_init, peak, exp_ns)
        say()
        say(f"covariance_type={ct}")
        for name in ("em_reference", "sklearn", "sklearn_1t"):
            r = s[name]
            say(f"  {name:14s} {1e3 * r['s_per_iter']:9.2f} ms/iter  (rounds {r['rounds']}, "
                f"min {1e3 * r['s_per_iter_min']:.2f}, iqr {1e3 * r['s_per_iter_iqr']:.2f})")
        say(f"  floor          {1e3 * floor:9.2f} ms/iter")
        say(f"  speed-up vs {base}: {s[base]['s_per_iter'] / ours:.1f}x; em_reference / floor: "
            f"{ours / floor:.2f}x")
        scores = {name: out[name]["params"].score(X) for name in ("em_reference", base)}
        say(f"  best restart's mean log-likelihood after {m2} iterations: em_reference "
            f"{scores['em_reference']:.10f}, {base} {scores[base]:.10f} (same starts; each "
            "keeps a restart by its own rule: here the objective at the returned parameters, "
            "scikit-learn's the lower bound one E-step earlier)")
    say(f"load average {load_average():.1f} at the end")
    return lines


def main(argv=None):
    p = marginal_time_parser(__doc__.splitlines()[0], m1=2, m2=8, repeats=5)
    p.add_argument("--n-init", type=int, default=16)
    a = p.parse_args(argv)
    write_report(run(a.n, a.d, a.k, a.n_init, a.covariance_types, a.m1, a.m2, a.repeats),
                 a.out)


if __name__ == "__main__":
    main()
