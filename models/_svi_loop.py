"""The optimiser loop shared by fit_map and fit_vi: restarts in parallel (vmap over stacked
SVI states), run in jitted chunks of ``window`` steps; between chunks the host checks the
convergence test and updates the optional progress bar."""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm


class LoopResult(NamedTuple):
    states: object            # stacked SVIState, leading axis R (restarts)
    losses: list              # per restart: (n_steps_r,) losses actually taken
    converged: np.ndarray     # (R,) bool
    failed: np.ndarray        # (R,) bool: a non-finite loss appeared
    n_nonfinite: np.ndarray   # (R,) int
    compile_time: float


def window_converged(prev, cur, tol):
    """Relative change of the mean loss between two consecutive windows, allowing for noise:
    |mean(cur) - mean(prev)| <= tol * |mean(cur)| + 2 * standard error of that difference."""
    se = np.sqrt(prev.var() / prev.size + cur.var() / cur.size)
    return abs(cur.mean() - prev.mean()) <= tol * abs(cur.mean()) + 2.0 * se


def run_restarts(svi, states, args, kwargs, *, max_steps, window, tol, patience=2,
                 progress_bar=False, desc="svi"):
    """Run ``svi.update`` on every restart until each converges (the window test holds for
    ``patience`` consecutive windows), fails (non-finite loss) or ``max_steps`` is reached.

    states: SVIState stacked over R restarts; the model arguments are closed over (constants of
    the compiled chunk, as in numpyro's own SVI.run), so models may inspect their data.
    """
    n_restarts = jax.tree.leaves(states)[0].shape[0]

    def chunk(states, active):
        def one(state, act):
            new, losses = jax.lax.scan(lambda s, _: svi.update(s, *args, **kwargs), state,
                                       None, length=window)
            new = jax.tree.map(lambda a, b: jnp.where(act, a, b), new, state)
            return new, losses

        return jax.vmap(one)(states, active)

    active = np.ones(n_restarts, bool)
    t0 = time.perf_counter()
    compiled = jax.jit(chunk).lower(states, active).compile()
    compile_time = time.perf_counter() - t0

    converged = np.zeros(n_restarts, bool)
    failed = np.zeros(n_restarts, bool)
    n_nonfinite = np.zeros(n_restarts, int)
    streak = np.zeros(n_restarts, int)
    taken = [[] for _ in range(n_restarts)]
    n_chunks = -(-max_steps // window)
    with tqdm(total=n_chunks * window, desc=desc, disable=not progress_bar) as bar:
        for _ in range(n_chunks):
            states, losses = compiled(states, active.copy())
            losses = np.asarray(losses)
            for r in np.flatnonzero(active):
                bad = ~np.isfinite(losses[r])
                if bad.any():
                    n_nonfinite[r] += int(bad.sum())
                    taken[r].append(losses[r][: np.argmax(bad) + 1])
                    failed[r], active[r] = True, False
                    continue
                if taken[r] and window_converged(taken[r][-1], losses[r], tol):
                    streak[r] += 1
                else:
                    streak[r] = 0
                taken[r].append(losses[r])
                if streak[r] >= patience:
                    converged[r], active[r] = True, False
            bar.update(window)
            finite = [t[-1][-1] for t, f in zip(taken, failed, strict=True) if not f]
            if finite:
                bar.set_postfix(loss=f"{min(finite):.6g}")
            if not active.any():
                break
    losses = [np.concatenate(t) if t else np.zeros(0) for t in taken]
    return LoopResult(states, losses, converged, failed, n_nonfinite, compile_time)
