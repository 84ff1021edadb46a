"""The evidence behind ``FitResult.status``: chain mixing (NUTS), the ELBO plateau (VI) and the
gradient certificate (MAP / MLE).

* Mixing (Vehtari, Gelman, Simpson, Carpenter, Buerkner 2021, "Rank-normalization, folding, and
  localization: an improved R-hat"): rank-normalised split r_hat <= 1.01 and bulk and tail ESS
  >= 400 for every scalar of every latent site, computed by ArviZ (``az.rhat`` method "rank",
  ``az.ess`` methods "bulk" and "tail"); any divergent transition after warm-up also fails.
* ELBO plateau: the change of the windowed mean ELBO between consecutive windows is within
  ``k`` standard errors of that change (plus a floor of ``tol`` nats), the standard errors from
  each window's detrended one-step estimates with their autocorrelation (ArviZ's MCSE).
* Gradient certificate: the Euclidean norm of the gradient of the objective with respect to the
  unconstrained parameters, divided by the number of observations.
"""

from __future__ import annotations

import contextlib
import logging

import arviz as az
import jax
import numpy as np
from numpyro import handlers

TARGET_R_HAT = 1.01
TARGET_ESS = 400


@contextlib.contextmanager
def quiet_arviz():
    """ArviZ logs "Shape validation failed" for one chain or few draws, and numpy warns on the
    0/0 of a constant chain: here those cases are judged by the targets (a NaN r_hat or a small
    ESS fails), so the warnings are noise."""
    log = logging.getLogger("arviz")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            yield
    finally:
        log.setLevel(level)


def _extreme(dataset, reduce):
    """max / min over every scalar of every variable of an xarray Dataset; NaN propagates (a
    stuck or constant chain gives NaN, which must fail the test, not be skipped)."""
    values = [np.ravel(np.asarray(dataset[v].values, dtype=float)) for v in dataset.data_vars]
    return float(reduce(np.concatenate(values))) if values else float("nan")


def mixing_diagnostics(draws, var_names, divergences, target_r_hat=TARGET_R_HAT,
                       target_ess=TARGET_ESS):
    """Mixing of MCMC draws by ArviZ.

    draws : site -> (n_chains, n_draws, *site_shape) (relabelled where the model is a mixture).
    var_names : the sites to judge (the latent sites).
    divergences : number of divergent transitions among those draws.
    With one chain, r_hat compares the chain's two halves as two chains (ArviZ needs >= 2).
    Returns r_hat_max, ess_bulk_min, ess_tail_min, mixed (bool: every target met and no
    divergence) and failures (list of the targets missed, as readable strings).
    """
    n_chains = next(iter(draws.values())).shape[0]
    posterior = {k: np.asarray(draws[k]) for k in var_names}
    if n_chains == 1:
        half = next(iter(posterior.values())).shape[1] // 2
        halves = {k: np.concatenate([v[:, :half], v[:, half:2 * half]]) for k, v in
                  posterior.items()}
    else:
        halves = posterior
    with quiet_arviz():
        r_hat = _extreme(az.rhat(az.convert_to_dataset(halves), method="rank"), np.max)
        data = az.convert_to_dataset(posterior)
        ess_bulk = _extreme(az.ess(data, method="bulk"), np.min)
        ess_tail = _extreme(az.ess(data, method="tail"), np.min)
    failures = []
    if not r_hat <= target_r_hat:  # NaN fails
        failures.append(f"r_hat_max {r_hat:.4g} > {target_r_hat}")
    if not ess_bulk >= target_ess:
        failures.append(f"ess_bulk_min {ess_bulk:.4g} < {target_ess}")
    if not ess_tail >= target_ess:
        failures.append(f"ess_tail_min {ess_tail:.4g} < {target_ess}")
    if divergences:
        failures.append(f"{divergences} divergent transitions after warm-up")
    return {"r_hat_max": r_hat, "ess_bulk_min": ess_bulk, "ess_tail_min": ess_tail,
            "mixed": not failures, "failures": failures}


def window_plateau(prev, cur, tol, k):
    """The ELBO plateau test between two consecutive windows of one-step loss estimates.

    prev, cur : (window,) losses (negative ELBO estimates, nats) of consecutive windows.
    The windows' means differ by delta; each mean's standard error is that of its window's
    estimates around their own linear trend (so that a steady climb is not mistaken for noise),
    with their autocorrelation accounted for (ArviZ's MCSE of the mean, from the ESS).
    Passes when |delta| <= tol + k * sqrt(se_prev^2 + se_cur^2): the change is within k
    standard errors (k = 2: about a 95% two-sided z-test), or below ``tol`` nats (a floor for
    nearly noiseless objectives). Returns (passed, delta, se of delta).
    """
    delta = float(np.mean(cur) - np.mean(prev))
    se = float(np.hypot(_mean_se(prev), _mean_se(cur)))
    return abs(delta) <= tol + k * se, delta, se


def _mean_se(losses):
    losses = np.asarray(losses, dtype=float)
    n = losses.size
    if n < 4:
        return float(np.std(losses) / np.sqrt(max(n, 1)))
    t = np.arange(n)
    residuals = losses - np.polyval(np.polyfit(t, losses, 1), t)
    if not np.any(residuals):
        return 0.0
    return float(az.mcse(residuals[None, :], method="mean"))


def n_observations(model, args, kwargs) -> int:
    """How many observations the model conditions on: every observed sample site's batch size
    (its value's size over its event size), summed. Traced abstractly (no computation)."""
    box = {}

    def run():
        box["trace"] = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **kwargs)

    jax.eval_shape(run)
    total = 0
    for site in box["trace"].values():
        if site["type"] == "sample" and site["is_observed"]:
            shape = np.shape(site["value"])
            event = site["fn"].event_shape
            total += int(np.prod(shape[: len(shape) - len(event)] or (1,)))
    return max(total, 1)
