"""The optimiser loop shared by fit_map and fit_vi: restarts in parallel (vmap over stacked
SVI states), run in jitted chunks of ``window`` steps; between chunks the host checks the
convergence test and updates the optional progress bar.

SVI objects are built by a factory ``make_svi(init_values) -> SVI`` and initialised inside the
jitted functions that use them: an autoguide sets itself up by running the model, and doing
that eagerly (op by op) cost ten times more than compiling it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from models._model_info import compile_timed


class LoopResult(NamedTuple):
    states: object            # stacked SVIState, leading axis R (restarts)
    averaged: object          # stacked unconstrained params averaged over each restart's last
    #                           active window (Polyak-Ruppert: removes SGD's jitter in VI)
    frozen_losses: object     # (n, at=None) -> (R, >= n) loss estimates at fixed parameters
    losses: list              # per restart: (n_steps_r,) losses actually taken
    converged: np.ndarray     # (R,) bool
    failed: np.ndarray        # (R,) bool: a non-finite loss appeared
    n_nonfinite: np.ndarray   # (R,) int
    compile_time: float
    last_change: np.ndarray   # (R,) change of the windowed mean loss at the last test
    last_se: np.ndarray       # (R,) its standard error as the test estimated it


def relative_window_test(tol):
    """fit_map's hand-off from Adam to L-BFGS (not a certificate: fit_map certifies its point
    by the gradient): the mean loss of two consecutive windows changed by at most
    tol * |mean| + 2 standard errors (iid within the window). -> test(prev, cur) ->
    (passed, change, se)."""
    def test(prev, cur):
        se = float(np.sqrt(prev.var() / prev.size + cur.var() / cur.size))
        change = float(cur.mean() - prev.mean())
        return abs(change) <= tol * abs(cur.mean()) + 2.0 * se, change, se
    return test


def over_restarts(fn):
    """``jax.vmap(fn)`` over a leading restart axis, except with one restart, where ``fn`` runs
    unbatched: under vmap a lax.cond on batched values (the diag density's fallback,
    models._components) becomes a select that runs both branches (measured at (1e6, 8, 8):
    fit_map diag peak RSS 1.55 GB vmapped, 1.26 GB unbatched)."""
    def run(*args):
        if jax.tree.leaves(args)[0].shape[0] == 1:
            out = fn(*jax.tree.map(lambda a: a[0], args))
            return jax.tree.map(lambda a: a[None], out)
        return jax.vmap(fn)(*args)
    return run


def ready_svi(make_svi, args, kwargs):
    """A fresh SVI from the factory, initialised (inside a trace: its state is discarded, the
    point is the guide's set-up and ``svi.constrain_fn``)."""
    svi = make_svi(None)
    svi.init(jax.random.PRNGKey(0), *args, **kwargs)
    return svi


def init_states(make_svi, keys, inits, info, margs):
    """One SVI state per key, stacked: the first len(inits) start from those constrained values
    (latent sites through the guide's init_to_value, param sites through init_params), the rest
    from the factory's default. Each kind is one jitted function, compiled once.
    Returns (states, compile seconds)."""

    def from_values(key, values, dyn):
        args, kwargs = margs.rebuild(dyn)
        latent = {k: v for k, v in values.items() if k in info.latent}
        params = {k: v for k, v in values.items() if k in info.params} or None
        return make_svi(latent or None).init(key, *args, init_params=params, **kwargs)

    def from_default(key, dyn):
        args, kwargs = margs.rebuild(dyn)
        return make_svi(None).init(key, *args, **kwargs)

    compiled, seconds, states = {}, 0.0, []
    for r, key in enumerate(keys):
        values = inits[r] if r < len(inits) else None
        sig = None if values is None else tuple(sorted(values))
        ex = (key, margs.dyn) if values is None else (key, values, margs.dyn)
        if sig not in compiled:
            compiled[sig], dt = compile_timed(from_default if values is None else from_values,
                                              *ex)
            seconds += dt
        states.append(compiled[sig](*ex))
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states), seconds


def run_restarts(make_svi, states, margs, *, max_steps, window, test, patience=2,
                 progress_bar=False, desc="svi"):
    """Run ``svi.update`` on every restart until each converges (``test(prev, cur) ->
    (passed, change, se)`` on the losses of two consecutive windows holds for ``patience``
    consecutive windows), fails (non-finite loss) or ``max_steps`` is reached.

    states: SVIState stacked over R restarts; margs: the model's arguments (ModelArgs).
    """
    n_restarts = jax.tree.leaves(states)[0].shape[0]

    def chunk(states, active, dyn):
        args, kwargs = margs.rebuild(dyn)
        svi = ready_svi(make_svi, args, kwargs)

        get_params = svi.optim.get_params

        def one(state, act):
            def step(carry, _):
                s, total = carry
                new, loss = svi.update(s, *args, **kwargs)
                # a stopped restart keeps its parameters but not its random key, so that its
                # losses stay independent estimates at fixed parameters
                kept = jax.tree.map(lambda a, b: jnp.where(act, a, b), new, s)
                kept = kept._replace(rng_key=new.rng_key)
                total = jax.tree.map(jnp.add, total, get_params(kept.optim_state))
                return (kept, total), loss

            zero = jax.tree.map(jnp.zeros_like, get_params(state.optim_state))
            (state, total), losses = jax.lax.scan(step, (state, zero), None, length=window)
            return state, losses, jax.tree.map(lambda t: t / window, total)

        return over_restarts(one)(states, active)

    active = np.ones(n_restarts, bool)
    compiled, compile_time = compile_timed(chunk, states, active, margs.dyn)

    converged = np.zeros(n_restarts, bool)
    failed = np.zeros(n_restarts, bool)
    n_nonfinite = np.zeros(n_restarts, int)
    streak = np.zeros(n_restarts, int)
    last_change = np.full(n_restarts, np.nan)
    last_se = np.full(n_restarts, np.nan)
    taken = [[] for _ in range(n_restarts)]
    averaged = None
    n_chunks = -(-max_steps // window)
    with tqdm(total=n_chunks * window, desc=desc, disable=not progress_bar) as bar:
        for _ in range(n_chunks):
            was_active = active.copy()
            states, losses, avg = compiled(states, was_active, margs.dyn)
            losses = np.asarray(losses)
            averaged = avg if averaged is None else jax.tree.map(
                lambda new, old, m=was_active: jnp.where(
                    m.reshape((-1,) + (1,) * (new.ndim - 1)), new, old), avg, averaged)
            for r in np.flatnonzero(active):
                bad = ~np.isfinite(losses[r])
                if bad.any():
                    n_nonfinite[r] += int(bad.sum())
                    taken[r].append(losses[r][: np.argmax(bad) + 1])
                    failed[r], active[r] = True, False
                    continue
                passed = False
                if taken[r]:
                    passed, last_change[r], last_se[r] = test(taken[r][-1], losses[r])
                streak[r] = streak[r] + 1 if passed else 0
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

    def frozen_losses(n, at=None):
        """The compiled chunk with every restart stopped: ceil(n / window) * window fresh
        one-step loss estimates per restart at its final parameters, or at the stacked
        states ``at`` (no recompilation)."""
        out, s, frozen = [], states if at is None else at, np.zeros(n_restarts, bool)
        for _ in range(-(-n // window)):
            s, batch, _ = compiled(s, frozen, margs.dyn)
            out.append(np.asarray(batch))
        return np.concatenate(out, axis=1)

    return LoopResult(states, averaged, frozen_losses, losses, converged, failed, n_nonfinite,
                      compile_time, last_change, last_se)
