"""The EM iteration, written once for every family and both engines (BlackJAX-style pure
functions).

An engine says how one E-step and one M-step run: em_reference.textbook.TextbookEngine (the
formulas as written, data held whole) or em_reference.fast.FastEngine (the exponential-family
kernel: chunked, restart-batched). Either way

    state = em_init(params)
    state = em_step(state, ...)     # E-step at state.params -> objective, then the M-step
    ...   inside one jitted lax.while_loop; restarts are a vmap over initial parameters.

The objective is the log-likelihood for EM, plus the log prior for MAP-EM, and the
classification log-likelihood for hard EM.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from em_reference import config  # noqa: F401  (float64)


class EMState(NamedTuple):
    """params: current parameters; objective: objective at the params of the previous
    iteration (-inf before the first); n_iter: M-steps done; converged / failed flags;
    trace (max_iter + 1,): objective per iteration, -inf where not reached; log_likelihood:
    after the loop, the log-likelihood at the returned parameters (no prior, no
    regulariser; nan before)."""

    params: Any
    objective: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    failed: jax.Array
    trace: jax.Array
    log_likelihood: jax.Array


def evaluate(engine, data, params, prior):
    """E-step at params: (objective, what the engine's M-step reads). The objective is the
    engine's (log-likelihood or classification log-likelihood) plus log p(theta) for MAP-EM."""
    value, payload = engine.e_step(data, params)
    if prior is not None:
        value = value + engine.family.log_prior(params, prior)
    return value, payload


def objective(engine, data, params, prior):
    """The objective EM increases, at params."""
    return evaluate(engine, data, params, prior)[0]


def em_init(params, max_iter):
    dtype = jax.tree.leaves(params)[0].dtype
    return EMState(params, jnp.asarray(-jnp.inf, dtype), jnp.asarray(0, jnp.int32),
                   jnp.asarray(False), jnp.asarray(False),
                   jnp.full(max_iter + 1, -jnp.inf, dtype), jnp.asarray(jnp.nan, dtype))


def all_finite(tree):
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def em_step(state, data, engine, prior, tol, n_total):
    """One EM iteration: E-step at state.params, then the (MAP-)M-step.

    Converged when the objective per unit of sample weight changed by less than tol (the
    convention of scikit-learn). A non-finite objective or non-finite new parameters stop the
    loop with ``failed`` set and the last finite parameters kept.
    """
    value, payload = evaluate(engine, data, state.params, prior)
    new_params = engine.m_step(data, payload, state.params, prior)
    finite = jnp.isfinite(value) & all_finite(new_params)
    converged = finite & (jnp.abs(value - state.objective) < tol * n_total)
    params = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_params, state.params)
    return state._replace(params=params, objective=value, n_iter=state.n_iter + 1,
                          converged=converged, failed=~finite,
                          trace=state.trace.at[state.n_iter].set(value))


@partial(jax.jit, static_argnames=("engine", "max_iter"))
def fit_em(init_params, data, prior, tol, *, engine, max_iter):
    """Run EM from a batch of initial parameters (leading axis: restarts), in parallel (vmap).

    data: what the engine reads ((X, sample_weight), whole or chunked). Returns the final
    EMState with every field batched over restarts; ``trace[n_iter]`` holds the objective at
    the returned parameters.
    """
    n_restarts = jax.tree.leaves(init_params)[0].shape[0]
    data = engine.prepare(data, n_restarts)
    n_total = engine.total_weight(data)

    def run_one(params):
        def cond(state):
            return (state.n_iter < max_iter) & ~state.converged & ~state.failed

        def body(state):
            return em_step(state, data, engine, prior, tol, n_total)

        state = jax.lax.while_loop(cond, body, em_init(params, max_iter))
        final = objective(engine, data, state.params, prior)
        return state._replace(objective=final, trace=state.trace.at[state.n_iter].set(final),
                              log_likelihood=engine.log_likelihood(data, state.params))

    return jax.vmap(run_one)(init_params)
