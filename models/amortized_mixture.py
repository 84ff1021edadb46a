"""Amortized inference for a mixture's assignments, against the exact E-step.

For a mixture with log joint L[n, k] = log pi_k + log p(x_n | theta_k) (the matrix EM's
E-step works from), any categorical q(c_n) has the exact bound

    ELBO_n(q) = sum_k q_nk (L[n, k] - log q_nk) = log p(x_n) - KL(q_n || p(c_n | x_n))

with log p(x_n) = logsumexp_k L[n, k]. EM's E-step sets q_n to the posterior, so its gap is 0;
an encoder network q_phi(c | x) = softmax(f_phi(x)) shared by all points leaves the
*amortization gap* KL(q_phi(. | x_n) || p(c_n | x_n)) >= 0, computed here exactly, with no
sampling noise. (The categorical family contains the exact posterior, so a mixture's
approximation gap is 0: its whole inference gap is amortization.)

Everything takes the log joint as a function ``log_joint_matrix(X, params) -> (N, K)`` (e.g.
the family function of em_reference, with the fitted parameters), or ``(X) -> (N, K)`` with
``params=None`` (e.g. a fitted estimator's bound method ``est.log_joint_matrix``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from em_reference.config import one_blas_thread
from models._common import check_positive_float, check_positive_int
from models.networks import MLP, check_width


def categorical_elbo(log_joint, logits):
    """ELBO_n of q_n = softmax(logits_n): (N, K), (N, K) -> (N,). A component with
    q_nk = 0 contributes 0 (the limit of q log q)."""
    log_q = jax.nn.log_softmax(logits, axis=1)
    q = jnp.exp(log_q)
    return jnp.sum(jnp.where(q > 0, q * (log_joint - log_q), 0.0), axis=1)


class MixtureGaps(NamedTuple):
    log_likelihood: np.ndarray     # (N,) log p(x_n), exact
    elbo: np.ndarray               # (N,) ELBO_n of the amortized q
    amortization_gap: np.ndarray   # (N,) log_likelihood - elbo = KL(q_n || posterior_n) >= 0
    mean_gap: float


def mixture_gaps(log_joint, logits) -> MixtureGaps:
    """Exact per-point log-likelihood, ELBO and amortization gap of q = softmax(logits)."""
    log_joint, logits = jnp.asarray(log_joint), jnp.asarray(logits)
    if log_joint.ndim != 2 or log_joint.shape != logits.shape:
        raise ValueError(f"log_joint and logits must both be (N, K), got {log_joint.shape} "
                         f"and {logits.shape}")
    log_lik = jax.nn.logsumexp(log_joint, axis=1)
    elbo = categorical_elbo(log_joint, logits)
    gap = np.asarray(log_lik - elbo)
    return MixtureGaps(np.asarray(log_lik), np.asarray(elbo), gap, float(gap.mean()))


class AmortizedCategorical(NamedTuple):
    """A fitted encoder q_phi(c | x); ``objective_trace`` (epochs,) the mean ELBO per point."""
    encoder: MLP
    objective_trace: np.ndarray

    def logits(self, X):
        return np.asarray(self.encoder(jnp.asarray(X, dtype=jnp.result_type(float))))

    def gaps(self, X, log_joint_matrix, params=None) -> MixtureGaps:
        return mixture_gaps(_log_joint(log_joint_matrix, X, params), self.logits(X))


def _log_joint(log_joint_matrix, X, params):
    out = log_joint_matrix(X) if params is None else log_joint_matrix(X, params)
    out = jnp.asarray(out, dtype=jnp.result_type(float))
    if out.ndim != 2 or out.shape[0] != len(X):
        raise ValueError(f"log_joint_matrix returned shape {out.shape}, expected (N={len(X)}, "
                         "K)")
    if not bool(jnp.all(jnp.isfinite(out) | (out == -jnp.inf))) or bool(
            jnp.any(jnp.all(out == -jnp.inf, axis=1))):
        raise ValueError("log_joint_matrix returned NaN, +inf, or a row with no finite entry")
    return out


@one_blas_thread()
def fit_amortized_categorical(X, log_joint_matrix, params=None, hidden=(128,), epochs=200,
                              batch_size=128, learning_rate=1e-3, activation="relu",
                              seed=0) -> AmortizedCategorical:
    """Fit q_phi(c | x) = softmax(MLP_phi(x)) (D -> *hidden -> K) by Adam on the exact mean
    ELBO of minibatches, the mixture held fixed. X: (N, D). The whole fit (epochs of shuffled
    minibatches, floor(N / batch_size) per epoch) is one compiled program.

    The ELBO's KL(q || posterior) is mode-seeking: where the posterior is nearly one-hot, an
    encoder that has settled on a wrong component for a point gets almost no gradient back,
    so the measured gap includes this optimisation error (wider networks and longer runs
    lower it); it is the gap of *this* amortized q, exact, not a bound on the best one."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or len(X) < 1 or not np.all(np.isfinite(X)):
        raise ValueError(f"X must be a finite 2-D array (N, D), got shape {X.shape}")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    learning_rate = check_positive_float(learning_rate, "learning_rate")
    hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    hidden = tuple(check_width(h, "hidden width") for h in hidden)
    if batch_size > len(X):
        raise ValueError(f"batch_size={batch_size} exceeds the {len(X)} points")
    log_joint = _log_joint(log_joint_matrix, X, params)
    Xj = jnp.asarray(X, dtype=jnp.result_type(float))
    n, k = log_joint.shape
    steps = n // batch_size
    key_init, key_data = jax.random.split(jax.random.PRNGKey(seed))
    encoder = MLP((X.shape[1], *hidden, k), activation, key=key_init)
    opt = optax.adam(learning_rate)

    def loss(enc, idx):
        return -jnp.mean(categorical_elbo(log_joint[idx], enc(Xj[idx])))

    def run(enc, key):
        def epoch(carry, key):
            order = jax.random.permutation(key, n)[: steps * batch_size]

            def step(carry, idx):
                enc, state = carry
                value, grad = jax.value_and_grad(loss)(enc, idx)
                updates, state = opt.update(grad, state, enc)
                return (optax.apply_updates(enc, updates), state), -value

            carry, values = jax.lax.scan(step, carry, order.reshape(steps, batch_size))
            return carry, values.mean()

        (enc, _), trace = jax.lax.scan(epoch, (enc, opt.init(enc)),
                                       jax.random.split(key, epochs))
        return enc, trace

    encoder, trace = jax.jit(run)(encoder, key_data)
    trace = np.asarray(trace)
    if not np.all(np.isfinite(trace)):
        raise FloatingPointError("fit_amortized_categorical: non-finite ELBO; lower "
                                 "learning_rate")
    return AmortizedCategorical(jax.tree.map(np.asarray, encoder), trace)
