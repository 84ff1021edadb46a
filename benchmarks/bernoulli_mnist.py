"""A 500-component Bernoulli mixture on binarized MNIST, by MAP-EM and by maximum likelihood.

    python -m benchmarks.bernoulli_mnist [--components 500] [--budget-minutes 30]
        [--segment 10] [--patience 2] [--out FILE]

Prints (and with --out writes) the held-out test log-likelihood per image against the
published mixture-of-Bernoullis result (Larochelle & Murray 2011, AISTATS, NADE paper: MoB
with 500 components, -137.64 nats; target: within 2 nats), what happens to plain MLE on the
test set and why, and the time per EM iteration of em_reference against an independent
vectorised NumPy implementation of the same EM step (same start, same result checked first).
Not a test: it takes tens of minutes on a 2-core machine. Both fits start from the same K
smoothed training images (data_start), run plain EM in segments scored on the validation split
(early stopping keeps the best segment end) and stop at the wall-time budget; the output says
which rule stopped them.

Data: experiments/data/binarized_mnist.npz (the standard fixed binarization, 50,000 / 10,000 /
10,000 rows of 784 bits packed along rows; experiments/data/PROVENANCE.md).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

from em_reference import BernoulliMixtureEM, BernoulliMixturePrior, bernoulli

DATA = Path(__file__).resolve().parent.parent / "experiments" / "data" / "binarized_mnist.npz"
PUBLISHED = -137.64  # Larochelle & Murray (2011), Table 2: MoB, 500 components
TARGET_NATS = 2.0


def load():
    packed = np.load(DATA)
    return {name: np.unpackbits(packed[name], axis=1)[:, :784].astype(np.float64)
            for name in ("train", "valid", "test")}


# ------------------------------------------------------------------ the independent NumPy EM
def numpy_em_step(x, weights, probs, prior):
    """One MAP-EM step written directly in NumPy (independent of em_reference): the E-step's
    (N, K) log joint x log p + (1 - x) log(1 - p) + log pi as one product,
    x logit(p) + sum_d log(1 - p_d) + log pi, scipy's logsumexp, the responsibilities,
    then the Beta/Dirichlet mode. Returns (log-likelihood, weights, probs)."""
    log1m = np.log1p(-probs)                                       # (K, D)
    log_joint = x @ (np.log(probs) - log1m).T + (log1m.sum(axis=1) + np.log(weights))
    per_sample = logsumexp(log_joint, axis=1)                      # (N,)
    resp = np.exp(log_joint - per_sample[:, None])                 # (N, K)
    nk = resp.sum(axis=0)
    sx = resp.T @ x                                                # (K, D)
    a, b = prior.probs_concentration1, prior.probs_concentration0
    alpha = np.broadcast_to(prior.weight_concentration, nk.shape)
    new_weights = np.maximum(nk + alpha - 1.0, 0.0)
    new_weights /= new_weights.sum()
    new_probs = np.clip((sx + a - 1.0) / (nk[:, None] + a + b - 2.0), bernoulli.MIN_PROB,
                        1.0 - bernoulli.MIN_PROB)
    return float(per_sample.sum()), new_weights, new_probs


def per_iteration(fn, m1, m2, rounds=2):
    """Marginal seconds per EM iteration: time(fn(m2)) - time(fn(m1)) over (m2 - m1), the
    median over rounds (start-up, data layout and compilation cancel)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(m1)
        mid = time.perf_counter()
        fn(m2)
        end = time.perf_counter()
        times.append(((end - mid) - (mid - start)) / (m2 - m1))
    return float(np.median(times))


def data_start(x, k, seed):
    """The start every fit here uses: K training images chosen at random, shrunk towards 1/2
    and jittered (p = 0.5 x + 0.25 + U(0, 0.05), kept in [0.05, 0.95]), equal weights. Cheap
    (k-means with K = 500 on 50,000 x 784 costs minutes on the 2-core box) and the same for
    em_reference and the NumPy EM."""
    rng = np.random.default_rng(seed)
    probs0 = np.clip(x[rng.choice(len(x), k, replace=False)] * 0.5 + 0.25
                     + 0.05 * rng.uniform(size=(k, x.shape[1])), 0.05, 0.95)
    return np.full(k, 1.0 / k), probs0


def em_fit(x, k, prior, start, n_iter):
    """em_reference's fit from ``start`` for exactly n_iter E-steps (tol=0)."""
    est = BernoulliMixtureEM(k, prior=prior, tol=0.0, max_iter=n_iter, weights_init=start[0],
                             probs_init=start[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(x)
    return est


def timing(x, k, seed, rounds):
    """em_reference (fast kernel) vs the NumPy EM above, same start: results checked equal
    after 3 iterations, then seconds per iteration."""
    start = data_start(x, k, seed)
    prior = BernoulliMixturePrior.default(x, k).validate(x.shape[1], k)

    def theirs(n_iter):
        w, p = start
        for _ in range(n_iter):
            _, w, p = numpy_em_step(x, w, p, prior)
        return w, p

    est, (w_np, p_np) = em_fit(x, k, prior, start, 3), theirs(3)
    diff = max(float(np.max(np.abs(est.probs_ - p_np))), float(np.max(np.abs(est.weights_ - w_np))))
    t_ours = per_iteration(lambda n: em_fit(x, k, prior, start, n), 2, 6, rounds)
    t_np = per_iteration(theirs, 1, 3, rounds)
    return {"max_param_diff_after_3": diff, "em_s": t_ours, "numpy_s": t_np}


def fit_early_stopped(data, k, prior, start, segment, max_iter, patience, seconds):
    """Plain EM from ``start`` in segments of ``segment`` E-steps (EM has no memory beyond
    its parameters, so the segments are one EM run), scoring the validation split after each;
    keeps the segment end with the best validation log-likelihood and stops after
    ``patience`` segments without improvement, at max_iter E-steps, when the fit is certified
    or when the next segment would overrun ``seconds``. Returns (best estimator, its E-steps,
    E-steps run, wall seconds, history [(E-steps, train, valid) per segment], why stopped)."""
    weights, probs = start
    best, best_iter, best_valid, history = None, 0, -np.inf, []
    done, since_best, clock = 0, 0, time.perf_counter()
    why = f"max_iter={max_iter} E-steps"
    while done < max_iter:
        seg_start = time.perf_counter()
        est = em_fit(data["train"], k, prior, (weights, probs), min(segment, max_iter - done))
        done += est.n_iter_
        valid = est.score(data["valid"])
        history.append((done, est.log_likelihood_ / len(data["train"]), valid))
        if valid > best_valid:
            best, best_iter, best_valid, since_best = est, done, valid, 0
        else:
            since_best += 1
        elapsed, seg_seconds = time.perf_counter() - clock, time.perf_counter() - seg_start
        if est.converged_:
            why = "a certified optimum"
            break
        if since_best >= patience:
            why = f"validation log-likelihood did not improve for {patience} segments"
            break
        if elapsed + seg_seconds > seconds:
            why = f"the wall-time budget ({seconds:.0f} s)"
            break
        weights, probs = est.weights_, est.probs_
    return best, best_iter, done, time.perf_counter() - clock, history, why


def impossible_under_unclipped_mle(est, x):
    """Test images that would have probability exactly 0 if the MLE's probabilities were not
    kept off 0 and 1: for every component some pixel the component never (always) saw on is
    on (off) in the image."""
    never_on = est.probs_ <= bernoulli.MIN_PROB * (1 + 1e-9)      # (K, D)
    always_on = est.probs_ >= 1.0 - bernoulli.MIN_PROB * (1 + 1e-9)
    bad = (x @ never_on.T.astype(float) + (1.0 - x) @ always_on.T.astype(float)) > 0  # (N, K)
    return int(np.sum(np.all(bad, axis=1)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", type=int, default=500)
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--budget-minutes", type=float, default=30.0,
                        help="wall time for the two fits together (MAP-EM gets 60%%)")
    parser.add_argument("--segment", type=int, default=10,
                        help="E-steps between validation scores (early stopping)")
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--timing-rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-rows", type=int, default=0, help="a quick check: first rows only")
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    def save():
        if args.out:  # after every section: a killed run keeps what it finished
            Path(args.out).write_text("\n".join(lines) + "\n")

    data = load()
    if args.train_rows:
        data = {name: rows[: args.train_rows] for name, rows in data.items()}
    k = args.components
    say(f"Bernoulli mixture, K = {k}, binarized MNIST: train {len(data['train']):,}, "
        f"valid {len(data['valid']):,}, test {len(data['test']):,} images of 784 pixels")

    t = timing(data["train"], k, args.seed, args.timing_rounds)
    say(f"time per EM iteration (same start; parameters after 3 iterations differ by "
        f"{t['max_param_diff_after_3']:.1e}): em_reference {t['em_s']:.2f} s, independent "
        f"NumPy {t['numpy_s']:.2f} s: NumPy / em_reference = {t['numpy_s'] / t['em_s']:.2f}x "
        f"(marginal time per iteration, median of {args.timing_rounds} rounds, same process)")
    save()

    start = data_start(data["train"], k, args.seed)
    budget = 60.0 * args.budget_minutes
    shares = (("MAP-EM (prior='default')", "default", 0.6), ("MLE (prior=None)", None, 0.4))
    say(f"Fits: plain EM from the start above, scored on the validation split every "
        f"{args.segment} E-steps; the best segment end is kept (early stopping, patience "
        f"{args.patience} segments); budget {budget:.0f} s of wall time, MAP-EM 60%, MLE 40%.")
    for name, prior, share in shares:
        est, best_iter, done, seconds, history, why = fit_early_stopped(
            data, k, prior, start, args.segment, args.max_iter, args.patience, share * budget)
        scores = {part: est.score(data[part]) for part in ("train", "valid", "test")}
        say()
        say(f"{name}: {done} E-steps in {seconds:.0f} s ({seconds / done:.2f} s each, "
            f"validation scoring included), stopped on {why}; kept the parameters after "
            f"{best_iter} E-steps (best validation); converged_={est.converged_}, "
            f"gradient_norm_={est.gradient_norm_:.2e}, Aitken distance "
            f"{est.distance_to_optimum_:.2e} per image")
        say("  per segment (E-steps: train / valid log-likelihood per image): "
            + "; ".join(f"{n}: {tr:.2f} / {va:.2f}" for n, tr, va in history))
        say("  log-likelihood per image at the kept parameters: "
            + ", ".join(f"{part} {v:.2f}" for part, v in scores.items()))
        if prior is not None:
            gap = scores["test"] - PUBLISHED
            say(f"  test vs published MoB-500 {PUBLISHED}: {gap:+.2f} nats "
                f"({'within' if abs(gap) <= TARGET_NATS else 'NOT within'} {TARGET_NATS})")
        else:
            n_bad = impossible_under_unclipped_mle(est, data["test"])
            n_edge = int(np.sum((est.probs_ <= bernoulli.MIN_PROB * (1 + 1e-9))
                                | (est.probs_ >= 1 - bernoulli.MIN_PROB * (1 + 1e-9))))
            say(f"  {n_edge:,} of {est.probs_.size:,} pixel probabilities are at the clip "
                f"MIN_PROB = {bernoulli.MIN_PROB:g} (their MLE S_kd / N_k is 0 or 1, in float64 "
                "mostly exactly, the far components' responsibilities underflowing to 0: the "
                "pixel was never on, or always on, in the component's images).")
            say(f"  Unclipped, those MLE probabilities give {n_bad:,} of "
                f"{len(data['test']):,} test images probability 0 (log-likelihood -inf, so "
                "the test mean is -inf); clipped, each such pixel costs "
                f"log({bernoulli.MIN_PROB:g}) = {np.log(bernoulli.MIN_PROB):.1f} nats, which "
                "is what drags the finite test value above down. MAP-EM's Beta prior keeps "
                "every probability at least (c m_d) / (N_k + c) from 0 instead.")
        save()


if __name__ == "__main__":
    main()
