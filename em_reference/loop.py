"""The EM iteration, written once for every family and both engines (BlackJAX-style pure
functions), with its stopping rule, its certificate and SQUAREM acceleration.

An engine says how one E-step and one M-step run: em_reference.textbook.TextbookEngine (the
formulas as written, data held whole) or em_reference.fast.FastEngine (the exponential-family
kernel: chunked, restart-batched). Either way

    state = em_init(params)
    state = em_step(state, ...)       # E-step at state.params -> objective, check, M-step
    ...   inside one jitted lax.while_loop; restarts are a vmap over initial parameters;
    acceleration="squarem": squarem_cycle instead of em_step.

The objective is the log-likelihood for EM (with the family's regulariser, if any), plus the
log prior for MAP-EM, and the classification log-likelihood for hard EM.

Stopping rule (soft EM; tol and cert_tol are per unit of sample weight). At the point theta_t
just evaluated, with objectives l_t, l_{t-1}, l_{t-2} of the last accepted points:

* distance: Aitken's acceleration (Boehning et al. 1994; McNicholas et al. 2010). EM converges
  linearly, l_t - l_{t-1} ~ a (l_{t-1} - l_{t-2}); with a_t that ratio, the limit is
  l_inf = l_{t-1} + (l_t - l_{t-1}) / (1 - a_t), and l_inf - l_{t-1} estimates how far the
  objective still is from its limit. When the last two changes are both below rounding the
  objective is flat to machine precision and the distance is 0; when a_t is not in [0, 1)
  the estimate is undefined (infinite).
* certificate: the norm of the gradient of the objective with respect to the unconstrained
  parameters (family.to_unconstrained: log weights, log-Cholesky covariances in units of the
  data's spread, log rates, logit probabilities), divided by the total sample weight.
* certificate floor: the certificate that rounding the parameters to the dtype leaves at an
  exact optimum, about ||H D||_F / sum_n w_n * tuning.CERTIFICATE_FLOOR_ULPS, with H the
  Hessian of the objective in u and D the spacing of the stored parameters carried into u
  (certificate_and_floor). It matters only where a component is tight and far from the
  data's centre (a mean at 5e5 with sd 1e-3: one spacing of the mean moves the gradient by
  ~10 per sample); elsewhere it is ~1e-15.

EM stops when the distance is below tol and the certificate is below max(cert_tol, floor),
and returns the M-step from that point. Hard EM stops at a fixed point of its own assignment
step (the M-step returns the parameters it was given, so one more step changes no
assignment) whose objective changed by less than tol. tol = 0 never stops early.

SQUAREM (Varadhan & Roland 2008, the SqS3 step length with the monotone safeguard): from
theta_0, two EM steps give theta_1, theta_2; in unconstrained coordinates u, with
r = u_1 - u_0 and v = u_2 - 2 u_1 + u_0, the step alpha = ||r|| / ||v|| (at least 1, at most
an adaptive bound that starts at 1 and grows by SQUAREM_STEP_FACTOR when reached) gives
u' = u_0 + 2 alpha r + alpha^2 v (alpha = 1 is theta_2). The objective at theta' must be at
least that at theta_1, else alpha is halved towards 1 (at most SQUAREM_MAX_BACKTRACKS times,
then theta' = theta_2, which EM's monotonicity accepts); then one EM step from theta'
(stabilisation) starts the next cycle. The objective at accepted points never decreases.
n_iter counts E-steps (passes over the data) in both modes; the trace holds, after each
E-step, the objective of the best accepted point so far.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from em_reference import config  # noqa: F401  (float64)
from em_reference import tuning

ACCELERATIONS = (None, "squarem")


class EMState(NamedTuple):
    """params: the point the next E-step evaluates; objective: objective at the last accepted
    point evaluated (-inf before the first); change: that objective minus the one before
    (nan before); distance, grad_norm: the stopping rule's Aitken distance and certificate
    (per unit of sample weight) at the last check (inf before; grad_norm nan for hard EM);
    n_iter: E-steps done; converged / failed flags; step_max: SQUAREM's largest step length;
    trace (max_iter + 1 + tuning.SQUAREM_MAX_CYCLE,): after each E-step, the objective of
    the best accepted point so far (-inf where not reached); log_likelihood: after the loop,
    the log-likelihood at the returned parameters (no prior, no regulariser); grad_floor:
    the certificate floor at the last check (0 before the first), which after the loop also
    stands for the returned point's."""

    params: Any
    objective: jax.Array
    change: jax.Array
    distance: jax.Array
    grad_norm: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    failed: jax.Array
    step_max: jax.Array
    trace: jax.Array
    log_likelihood: jax.Array
    grad_floor: jax.Array


class Problem(NamedTuple):
    """What every step reads: the engine (static), the data, the prior, the tolerances, the
    data's spread (D,) for the unconstrained coordinates, and the total sample weight."""

    engine: Any
    data: Any
    prior: Any
    tol: jax.Array
    cert_tol: jax.Array
    scale: jax.Array
    n_total: jax.Array


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


def em_init(params, max_iter, history=None):
    """The state before the first E-step at params. history: None or (objective, change) of
    the last accepted point of an earlier fit that ended at params (a warm start), so that the
    stopping rule continues from it instead of needing two new objective changes."""
    dtype = jax.tree.leaves(params)[0].dtype
    scalar = lambda value: jnp.asarray(value, dtype)  # noqa: E731
    objective, change = (-jnp.inf, jnp.nan) if history is None else history
    return EMState(params, scalar(objective), scalar(change), scalar(jnp.inf), scalar(jnp.inf),
                   jnp.asarray(0, jnp.int32), jnp.asarray(False), jnp.asarray(False),
                   scalar(1.0), jnp.full(max_iter + 1 + tuning.SQUAREM_MAX_CYCLE, -jnp.inf,
                                         dtype), scalar(jnp.nan), scalar(0.0))


def all_finite(tree):
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def free_fields(family):
    return [name for name in family.params_class._fields if name not in family.fixed]


def squared_norm(family, u):
    """sum of squares over the free (not fixed) parameters of an unconstrained pytree."""
    return sum(jnp.sum(getattr(u, name) ** 2) for name in free_fields(family))


def certificate(problem, params, payload):
    """||grad_u objective(theta)|| / sum_n w_n at params (payload: the E-step's at params)."""
    grad = problem.engine.gradient(problem.data, params, payload, problem.prior, problem.scale)
    return jnp.sqrt(squared_norm(problem.engine.family, grad)) / problem.n_total


def certificate_and_floor(problem, params, payload):
    """(certificate, its floor) at params, both from one forward-over-reverse pass: the
    gradient g(u) and the Hessian-vector product H t in the unconstrained coordinates u.

    The floor is the certificate that rounding params to their dtype leaves at an exact
    optimum, CERTIFICATE_FLOOR_ULPS * ||H D s|| / sum_n w_n: H is the Hessian of the
    objective as the engine's gradient defines it (the fast engine holds its moments fixed:
    the complete-data Hessian, at least the observed one); D is diagonal, one spacing of each
    stored free parameter carried into u (fixed ones: 0); s has random signs, so that
    E ||H D s||^2 = ||H D||_F^2 (exactly, for a diagonal H)."""
    engine, scale = problem.engine, problem.scale
    family = engine.family
    free = free_fields(family)
    spacing = family.params_class(*(jnp.spacing(leaf) if name in free else jnp.zeros_like(leaf)
                                    for name, leaf in zip(params._fields, params)))
    u, du = jax.jvp(lambda p: family.to_unconstrained(p, scale), (params,), (spacing,))
    leaves, treedef = jax.tree.flatten(du)
    keys = jax.random.split(jax.random.PRNGKey(0), len(leaves))
    tangent = jax.tree.unflatten(treedef, [jax.random.rademacher(k, d.shape, d.dtype)
                                           * jnp.abs(d) for k, d in zip(keys, leaves)])
    objective = engine.unconstrained_objective(problem.data, payload, problem.prior, scale)
    grad, hessian_tangent = jax.jvp(jax.grad(objective), (u,), (tangent,))
    norm = lambda tree: jnp.sqrt(squared_norm(family, tree)) / problem.n_total  # noqa: E731
    return norm(grad), tuning.CERTIFICATE_FLOOR_ULPS * norm(hessian_tangent)


def aitken_distance(value, state, n_total):
    """(Aitken's estimate of l_inf - l_{t-1} per unit weight, l_t - l_{t-1}) for the objective
    ``value`` = l_t after the accepted objectives state.objective = l_{t-1} and its change."""
    delta = value - state.objective
    rate = delta / state.change
    noise = tuning.OBJECTIVE_ROUNDING * jnp.maximum(jnp.abs(value), n_total)
    flat = (jnp.abs(delta) <= noise) & (jnp.abs(state.change) <= noise)
    linear = (delta >= 0) & (state.change > 0) & (rate < 1)
    distance = jnp.where(flat, 0.0, jnp.where(linear, delta / (1.0 - rate), jnp.inf))
    change = jnp.where(jnp.isfinite(state.objective), delta, jnp.nan)
    return distance / n_total, change


def check(state, value, payload, problem):
    """The soft-EM stopping rule at state.params, whose objective is value: (state with
    objective, change, distance and grad_norm updated, converged). The certificate is only
    computed once the distance is below tol (a real branch for one restart)."""
    distance, change = aitken_distance(value, state, problem.n_total)
    near = distance < problem.tol
    grad_norm, floor = jax.lax.cond(
        near, lambda: certificate_and_floor(problem, state.params, payload),
        lambda: (jnp.asarray(jnp.inf, value.dtype), jnp.zeros((), value.dtype)))
    converged = near & (grad_norm <= jnp.maximum(problem.cert_tol, floor))
    return state._replace(objective=value, change=change, distance=distance,
                          grad_norm=grad_norm, grad_floor=floor), converged


def same_params(a, b):
    """True when every leaf is bitwise equal: a hard-EM step that reproduces its input came
    from the same assignments (identical sums), so the next step reproduces it too."""
    return jnp.all(jnp.array([jnp.all(x == y) for x, y in zip(jax.tree.leaves(a),
                                                              jax.tree.leaves(b))]))


def em_step(state, problem):
    """One EM iteration: E-step at state.params, the stopping rule, the (MAP-)M-step.

    A non-finite objective or non-finite new parameters stop the loop with ``failed`` set and
    the last finite parameters kept.
    """
    engine = problem.engine
    value, payload = evaluate(engine, problem.data, state.params, problem.prior)
    new_params = engine.m_step(problem.data, payload, state.params, problem.prior)
    finite = jnp.isfinite(value) & all_finite(new_params)
    if engine.hard:
        delta = jnp.abs(value - state.objective)
        state = state._replace(objective=value, change=delta, distance=delta / problem.n_total,
                               grad_norm=jnp.asarray(jnp.nan, value.dtype))
        converged = same_params(new_params, state.params) & (state.distance < problem.tol)
    else:
        state, converged = check(state, value, payload, problem)
    params = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_params, state.params)
    return state._replace(params=params, n_iter=state.n_iter + 1, converged=finite & converged,
                          failed=~finite, trace=state.trace.at[state.n_iter].set(value))


def squarem_cycle(state, problem):
    """One SQUAREM cycle from state.params (module docstring): 3 E-steps and more with
    backtracking; stops like em_step when the stopping rule holds at the cycle's start."""
    engine, data, prior = problem.engine, problem.data, problem.prior
    family, scale = engine.family, problem.scale
    p0, n = state.params, state.n_iter
    l0, payload0 = evaluate(engine, data, p0, prior)
    p1 = engine.m_step(data, payload0, p0, prior)
    finite = jnp.isfinite(l0) & all_finite(p1)
    checked, converged = check(state, l0, payload0, problem)
    checked = checked._replace(trace=state.trace.at[n].set(l0))

    def stop(_):
        params = jax.tree.map(lambda new, old: jnp.where(finite, new, old), p1, p0)
        return checked._replace(params=params, n_iter=n + 1, converged=finite & converged,
                                failed=~finite)

    def extrapolate(_):
        l1, payload1 = evaluate(engine, data, p1, prior)
        p2 = engine.m_step(data, payload1, p1, prior)
        u0, u1, u2 = (family.to_unconstrained(p, scale) for p in (p0, p1, p2))
        r = jax.tree.map(jnp.subtract, u1, u0)
        v = jax.tree.map(lambda a, b, c: a - 2.0 * b + c, u2, u1, u0)
        r2, v2 = squared_norm(family, r), squared_norm(family, v)
        alpha0 = jnp.clip(jnp.sqrt(r2 / jnp.where(v2 > 0, v2, 1.0)), 1.0, state.step_max)
        alpha0 = jnp.where(v2 > 0, alpha0, 1.0)
        trace = checked.trace.at[n + 1].set(l1)

        def candidate(alpha):
            u = jax.tree.map(lambda a, b, c: a + 2.0 * alpha * b + alpha**2 * c, u0, r, v)
            p = family.from_unconstrained(u, scale)
            # fixed parameters stay bitwise as they were; alpha = 1 is theta_2 itself
            p = family.params_class(*(getattr(p0, name) if name in family.fixed
                                      else getattr(p, name) for name in p._fields))
            return jax.tree.map(lambda a, b: jnp.where(alpha == 1.0, a, b), p2, p)

        def not_accepted(carry):
            return ~carry[2] & (carry[1] <= tuning.SQUAREM_MAX_BACKTRACKS)

        def attempt(carry):
            alpha, tries, _, _, _, _, trace = carry
            alpha = jnp.where(tries == tuning.SQUAREM_MAX_BACKTRACKS, 1.0, alpha)
            p = candidate(alpha)
            value, payload = evaluate(engine, data, p, prior)
            ok = jnp.isfinite(value) & all_finite(p) & ((value >= l1) | (alpha == 1.0))
            trace = trace.at[n + 2 + tries].set(jnp.where(ok, jnp.maximum(value, l1), l1))
            return (jnp.where(ok, alpha, 0.5 * (alpha + 1.0)), tries + 1, ok, value, payload,
                    p, trace)

        zero_payload = jax.tree.map(jnp.zeros_like, payload1)
        carry = (alpha0, jnp.asarray(0, jnp.int32), jnp.asarray(False), l1, zero_payload, p2,
                 trace)
        alpha, tries, _, value, payload, p, trace = jax.lax.while_loop(not_accepted, attempt,
                                                                       carry)
        p_next = engine.m_step(data, payload, p, prior)
        at_bound = alpha0 == state.step_max
        step_max = jnp.where(at_bound & (tries == 1), state.step_max * tuning.SQUAREM_STEP_FACTOR,
                             jnp.where(at_bound & (tries > 1),
                                       jnp.maximum(1.0, state.step_max
                                                   / tuning.SQUAREM_STEP_FACTOR),
                                       state.step_max))
        ok12 = jnp.isfinite(l1) & all_finite(p2) & jnp.isfinite(value) & all_finite(p_next)
        params = jax.tree.map(lambda a, b: jnp.where(ok12, a, b), p_next, p1)
        return checked._replace(params=params, n_iter=n + 2 + tries, step_max=step_max,
                                trace=trace)

    return jax.lax.cond(converged | ~finite, stop, extrapolate, None)


@partial(jax.jit, static_argnames=("engine", "max_iter", "acceleration"))
def fit_em(init_params, data, prior, tol, cert_tol, scale, history=None, *, engine, max_iter,
           acceleration=None):
    """Run EM from a batch of initial parameters (leading axis: restarts), in parallel (vmap;
    one restart runs unbatched, so that its branches stay branches).

    data: what the engine reads ((X, sample_weight), whole or chunked); scale (D,): the data's
    spread for the unconstrained coordinates. history: None, or (objective (R,), change (R,))
    of the restarts' last accepted points in earlier fits that ended at init_params (a warm
    start continues the stopping rule; -inf / nan: no history). Returns the final EMState
    with every field batched over restarts; ``trace[n_iter]`` holds the objective at the
    returned parameters, grad_norm the certificate there (grad_floor the floor of the last
    check), and objective / change those of the last accepted point the loop checked (the
    history of a warm start after it).
    """
    n_restarts = jax.tree.leaves(init_params)[0].shape[0]
    data = engine.prepare(data, n_restarts)
    dtype = jax.tree.leaves(init_params)[0].dtype
    problem = Problem(engine, data, prior, tol, cert_tol, jnp.asarray(scale, dtype),
                      engine.total_weight(data))
    step = squarem_cycle if acceleration == "squarem" else em_step

    if history is None:
        history = (jnp.full(n_restarts, -jnp.inf, dtype), jnp.full(n_restarts, jnp.nan, dtype))

    def run_one(params_and_history):
        params, past = params_and_history

        def cond(state):
            return (state.n_iter < max_iter) & ~state.converged & ~state.failed

        state = jax.lax.while_loop(cond, lambda s: step(s, problem),
                                   em_init(params, max_iter, past))
        final, payload = evaluate(engine, data, state.params, prior)
        # the floor of the last check stands for the returned point's, one M-step further
        # (both at rounding distance from the optimum): one Hessian pass compiled, not two
        grad_norm = (jnp.asarray(jnp.nan, dtype) if engine.hard
                     else certificate(problem, state.params, payload))
        return state._replace(grad_norm=grad_norm,
                              trace=state.trace.at[state.n_iter].set(final),
                              log_likelihood=engine.log_likelihood(data, state.params))

    starts = (init_params, history)
    if n_restarts == 1:
        one = run_one(jax.tree.map(lambda leaf: leaf[0], starts))
        return jax.tree.map(lambda leaf: leaf[None], one)
    if acceleration == "squarem" or not engine.batch_restarts:
        # restarts one after another: a SQUAREM cycle's branches (backtracking, the stopping
        # test) stay branches, and JAX's custom_vmap (the one-product E-step) rejects the
        # batched constants a vmapped cond inside a while_loop hands it; an engine that does
        # not batch restarts (textbook) runs each exactly as a single fit
        return jax.lax.map(run_one, starts)
    return jax.vmap(run_one)(starts)
