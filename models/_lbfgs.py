"""A small L-BFGS with a backtracking (Armijo) line search, for polishing an Adam solution.

Written so that the objective and its gradient are evaluated at a single call site inside one
``lax.while_loop``: jax.scipy.optimize's BFGS inlines the gradient graph at several call sites of
its Wolfe line search, which made compilation several times slower than the Adam loop itself.
Pure and vmappable: ``lbfgs(fun, x0)`` for a scalar ``fun`` of a flat vector.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class LBFGSResult(NamedTuple):
    x: jax.Array        # (P,) best point found
    fun: jax.Array      # objective at x
    fun_init: jax.Array  # objective at x0
    grad_norm: jax.Array  # Euclidean norm of the gradient at x
    n_iter: jax.Array   # accepted steps
    converged: jax.Array  # bool: ||gradient|| <= gtol (not max_iter / stalled)


class _State(NamedTuple):
    x: jax.Array
    f: jax.Array
    f_init: jax.Array
    g: jax.Array
    s_mem: jax.Array   # (m, P) last accepted steps
    y_mem: jax.Array   # (m, P) matching gradient changes
    n_mem: jax.Array
    direction: jax.Array
    step: jax.Array    # current trial step length along direction
    n_iter: jax.Array
    n_eval: jax.Array
    n_small: jax.Array  # consecutive accepted steps below the relative decrease floor
    done: jax.Array
    converged: jax.Array


def _direction(g, s_mem, y_mem, n_mem):
    """Two-loop recursion: -H g with the stored pairs (newest first in the arrays)."""
    m = s_mem.shape[0]
    valid = jnp.arange(m) < n_mem
    rho = jnp.where(valid, 1.0 / jnp.where(valid, jnp.sum(s_mem * y_mem, 1), 1.0), 0.0)

    def first(q, i):
        a = rho[i] * jnp.dot(s_mem[i], q)
        return q - a * y_mem[i], a

    q, alpha = jax.lax.scan(first, g, jnp.arange(m))
    gamma = jnp.where(n_mem > 0, jnp.dot(s_mem[0], y_mem[0]) / jnp.dot(y_mem[0], y_mem[0]), 1.0)
    r = gamma * q

    def second(r, i):
        b = rho[i] * jnp.dot(y_mem[i], r)
        return r + s_mem[i] * (alpha[i] - b), None

    r, _ = jax.lax.scan(second, r, jnp.arange(m)[::-1])
    return -r


def lbfgs(fun, x0, gtol, max_iter=500, memory=10, rtol=1e-15, patience=5, max_eval=None):
    """Minimise ``fun`` from ``x0`` (P,). Converged when the Euclidean norm of the gradient is
    at most ``gtol`` (absolute). Also stops, not converged, after ``max_iter`` accepted steps /
    ``max_eval`` evaluations, after ``patience`` accepted steps in a row that each decrease
    ``fun`` by at most rtol * max(1, |f|) (the rounding floor of f), or when a step fails the
    Armijo test 30 halvings in a row (nothing representable improves)."""
    max_eval = max_eval or 5 * max_iter
    value_and_grad = jax.value_and_grad(fun)
    p = x0.shape[0]
    zeros = jnp.zeros((memory, p), x0.dtype)
    inf = jnp.array(jnp.inf, x0.dtype)
    # the first pass of the loop evaluates x0 itself (step 0, always accepted), so that the
    # gradient graph is compiled once
    init = _State(x0, inf, inf, jnp.zeros_like(x0), zeros, zeros, jnp.array(0),
                  jnp.zeros_like(x0), jnp.array(0.0, x0.dtype), jnp.array(-1), jnp.array(0),
                  jnp.array(0), jnp.array(False), jnp.array(False))

    def cond(s):
        return ~s.done

    def body(s):
        first = s.n_iter < 0
        x_new = s.x + s.step * s.direction
        f_new, g_new = value_and_grad(x_new)
        slope = jnp.dot(s.g, s.direction)
        ok = first | (jnp.isfinite(f_new) & (f_new <= s.f + 1e-4 * s.step * slope))
        # accepted: store the pair (if curvature is positive) and take a new direction
        sk, yk = x_new - s.x, g_new - s.g
        keep = ok & ~first & (jnp.dot(sk, yk) > 1e-12 * jnp.dot(yk, yk))
        s_mem = jnp.where(keep, jnp.roll(s.s_mem, 1, 0).at[0].set(sk), s.s_mem)
        y_mem = jnp.where(keep, jnp.roll(s.y_mem, 1, 0).at[0].set(yk), s.y_mem)
        n_mem = jnp.where(keep, jnp.minimum(s.n_mem + 1, memory), s.n_mem)
        x = jnp.where(ok, x_new, s.x)
        f = jnp.where(ok, f_new, s.f)
        g = jnp.where(ok, g_new, s.g)
        d_new = _direction(g, s_mem, y_mem, n_mem)
        d_new = jnp.where(jnp.dot(d_new, g) < 0, d_new, -g)  # keep a descent direction
        # first real step: a gradient step whose largest coordinate moves by one unit
        tiny = jnp.finfo(g.dtype).tiny
        d_new = jnp.where(first, -g / jnp.maximum(jnp.max(jnp.abs(g)), tiny), d_new)
        direction = jnp.where(ok, d_new, s.direction)
        step = jnp.where(ok, 1.0, 0.5 * s.step)
        n_iter = s.n_iter + ok
        small = ok & ~first & ((s.f - f_new) <= rtol * jnp.maximum(1.0, jnp.abs(f_new)))
        n_small = jnp.where(ok, jnp.where(small, s.n_small + 1, 0), s.n_small)
        converged = jnp.linalg.norm(g) <= gtol
        stalled = (~first & (s.step < 2.0**-30)) | (n_small >= patience)
        done = (converged | stalled | (n_iter >= max_iter) | (s.n_eval + 1 >= max_eval)
                | ~jnp.isfinite(f))
        return _State(x, f, jnp.where(first, f_new, s.f_init), g, s_mem, y_mem, n_mem,
                      direction, step, n_iter, s.n_eval + 1, n_small, done,
                      converged & jnp.isfinite(f))

    s = jax.lax.while_loop(cond, body, init)
    return LBFGSResult(s.x, s.f, s.f_init, jnp.linalg.norm(s.g), s.n_iter, s.converged)
