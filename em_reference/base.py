"""Scikit-learn-style estimator shell around the functional EM core (written once for every
family, as sklearn/mixture/_base.py). A family subclass supplies the pieces marked below."""

from __future__ import annotations

import math
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from em_reference import config
from em_reference import elbo as elbo_lib
from em_reference.initialization import INIT_METHODS, initial_responsibilities
from em_reference.loop import fit_em, scan_sum
from em_reference.validation import (as_2d_samples, check_choice, check_float, check_int,
                                     check_sample_weight)


# the features T(X) of all samples are kept for the whole fit below this size (bytes); building
# them briefly takes about twice this (the slices before they are joined)
FEATURE_CACHE_BYTES = 2**27

# the fit's warnings point at the user's call: warn in _fit <- one_blas_thread's wrapper
# (contextlib) <- fit / fit_predict <- the caller
WARN_AT_CALLER = 4


@partial(jax.jit, static_argnames="family")
def _log_joint(X, params, family):
    return family.log_joint_matrix(X, params)


@partial(jax.jit, donate_argnums=0)
def _write_chunks(X_chunks, block, first):
    """X_chunks with chunks first, first + 1, ... replaced by block (in place: donated)."""
    return jax.lax.dynamic_update_slice(X_chunks, block, (first, 0, 0))


@partial(jax.jit, static_argnames="family")
def _mle_from_resp(X_chunks, weighted_resp_chunks, family):
    """M-step (MLE) from initial responsibilities, accumulated chunk by chunk.
    X_chunks (n_chunks, C, D); weighted_resp_chunks (n_chunks, C, K)."""

    stats = scan_sum(family.sufficient_stats, (X_chunks, weighted_resp_chunks))
    return family.m_step(stats, None, None)


class MixtureEM(DensityMixin, BaseEstimator):
    """Shared fit/predict logic. Subclasses define:

    _family()                      -> hashable family object (GaussianFamily, PoissonFamily)
    _params_class                  NamedTuple of parameters
    _validate_family_params()      extra hyper-parameter checks
    _validate_samples(X)           extra data checks (X already (N, D) float64)
    _resolve_prior(X, w)           None or a validated prior object
    _data_center(X, w)             None, or a point (D,) EM works relative to (precision)
    _translate(params|prior, v)    the same object with locations moved by v
    _user_init(n_features)         dict of user-given initial parameters (validated)
    _store(params) / _params()     fitted attributes <-> parameter NamedTuple
    _n_parameters()                free parameters (BIC/AIC)
    _sample_component(rng, k, n)   n draws from component k
    """

    _params_class = None

    # ------------------------------------------------------------------ validation
    def _validate_common_params(self):
        check_int("n_components", self.n_components, 1)
        check_float("tol", self.tol, 0.0)
        check_int("max_iter", self.max_iter, 1)
        check_int("n_init", self.n_init, 1)
        check_choice("init_params", self.init_params, INIT_METHODS)
        check_choice("assignment", self.assignment, ("soft", "hard"))
        check_choice("dtype", self.dtype, ("float64", "float32"))
        fixed = tuple(self.fixed_params or ())
        for name in fixed:
            check_choice("fixed_params entry", name, tuple(self._params_class._fields))
        self._validate_family_params()

    def _validate_X(self, X, reset):
        X = as_2d_samples(self, X, reset)
        return self._validate_samples(X)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None, *, chunk_size=None, devices=None):
        """Fit by EM (MLE, or MAP-EM with a prior), best of n_init restarts run in parallel.

        X: (N, D) or (N,). sample_weight: (N,) non-negative frequency weights (a row with
        weight 3 counts as three identical rows). chunk_size: stream the E-step over chunks of
        this many rows, rebuilding each chunk's features T(x) every iteration (memory
        O(chunk_size * F), never the (N, K) responsibilities or the (N, F) features);
        None picks the chunk size and keeps T(X) for the whole fit when it takes at most
        FEATURE_CACHE_BYTES (128 MB), which is faster.
        devices: an int or a list of jax devices; X is sharded along samples over them.
        """
        return self._fit(X, sample_weight, chunk_size, devices)

    def fit_predict(self, X, y=None, sample_weight=None, *, chunk_size=None, devices=None):
        """Fit, then return the labels (N,) of X under the fitted model."""
        return self._fit(X, sample_weight, chunk_size, devices).predict(X)

    # the whole fit, host preparation included: one numpy BLAS call (centring X) left
    # OpenBLAS's workers spinning through the first ~0.1 s of the EM loop (config.one_blas_thread)
    @config.one_blas_thread()
    def _fit(self, X, sample_weight, chunk_size, devices):
        self._validate_common_params()
        X = self._validate_X(X, reset=True)
        w = check_sample_weight(sample_weight, X.shape[0])
        if np.count_nonzero(w) < self.n_components:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                             f"{self.n_components}, n_samples = {np.count_nonzero(w)}")
        if chunk_size is not None:
            check_int("chunk_size", chunk_size, 1)
        self.prior_ = self._resolve_prior(X, w)
        family = self._family()
        # EM runs on data relative to their mean: scatter matrices from raw moments lose
        # digits when the mean is far from zero compared with the spread
        self._center = self._data_center(X, w)
        prior = self.prior_
        if prior is not None and self._center is not None:
            prior = self._translate(prior, -self._center)

        dtype = jnp.dtype(self.dtype)
        cast = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)  # noqa: E731
        n_feat = family.feature_width(X.shape[1])
        # per row, a block holds the features and every restart's K log joints
        Xd, wd = self._lay_out(X, w, self._center, chunk_size, devices, dtype,
                               n_feat + self.n_init * self.n_components)
        # chunk_size=None keeps the features T(X) for the whole fit when they are small
        # (not rebuilt every iteration); an explicit chunk_size asks for O(chunk) memory
        cache = chunk_size is None and (
            Xd.shape[0] * Xd.shape[1] * n_feat * dtype.itemsize <= FEATURE_CACHE_BYTES)
        # initial responsibilities (k-means, seed points) do not depend on where the origin is
        init = self._initial_params(X, w, Xd, family)
        state = jax.device_get(fit_em(
            cast(init), Xd, wd, None if prior is None else cast(prior),
            jnp.asarray(self.tol, dtype), family=family, hard=self.assignment == "hard",
            max_iter=self.max_iter, cache_features=cache))

        finals = np.array([state.trace[i, state.n_iter[i]] for i in range(self.n_init)])
        if not np.any(np.isfinite(finals)):
            raise FloatingPointError(
                "EM produced a non-finite objective in every restart (a component collapsed "
                "onto too few points or the data are degenerate); increase reg_covar, use a "
                "prior (prior='default') or fewer components.")
        best = int(np.nanargmax(np.where(np.isfinite(finals), finals, -np.inf)))
        params = self._params_class(*(np.asarray(leaf[best], np.float64)
                                      for leaf in state.params))
        self._store(self._translate(params, self._center))
        self.n_iter_ = int(state.n_iter[best])
        self.converged_ = bool(state.converged[best])
        self.lower_bounds_ = np.asarray(state.trace[best, : self.n_iter_ + 1], np.float64)
        self.lower_bound_ = float(finals[best])
        if bool(state.failed[best]):
            warnings.warn(f"EM stopped at iteration {self.n_iter_}: the next update was not "
                          "finite; the last finite parameters are kept.", RuntimeWarning,
                          stacklevel=WARN_AT_CALLER)
        elif not self.converged_:
            warnings.warn(f"EM did not converge in max_iter={self.max_iter} iterations "
                          f"(tol={self.tol}); increase max_iter or tol.", ConvergenceWarning,
                          stacklevel=WARN_AT_CALLER)
        return self

    def _initial_params(self, X, w, X_chunks, family):
        """A batch of initial parameters (leading axis: n_init restarts). X (N, D) as given;
        X_chunks the centred device chunks."""
        user = self._user_init(X.shape[1])
        if "means" in user and self._center is not None:
            user["means"] = user["means"] - self._center
        rng = check_random_state(self.random_state)
        batch = []
        for _ in range(self.n_init):
            if len(user) == len(self._params_class._fields):
                start = user
            else:
                resp = initial_responsibilities(X, self.n_components, self.init_params, rng, w)
                resp_chunks = self._chunks_like(resp * w[:, None], X_chunks)
                mle = _mle_from_resp(X_chunks, resp_chunks, family)
                start = {**mle._asdict(), **user}
            batch.append(self._params_class(**{k: np.asarray(v) for k, v in start.items()}))
        return jax.tree.map(lambda *leaves: np.stack(leaves), *batch)

    @staticmethod
    def _chunks_like(rows, X_chunks):
        """Pad (N, K) rows with zeros and reshape them to X_chunks' (n_chunks, C, K) layout."""
        n_chunks, c = X_chunks.shape[:2]
        padded = np.zeros((n_chunks * c, rows.shape[1]), dtype=X_chunks.dtype)
        padded[: len(rows)] = rows
        return jax.device_put(padded.reshape(n_chunks, c, -1), X_chunks.sharding)

    @staticmethod
    def _lay_out(X, w, center, chunk_size, devices, dtype, row_width):
        """Centre, pad with zero-weight rows to whole chunks, reshape, shard, without a host
        copy of X: the device array is filled block by block in place (streaming EM's peak
        memory is then X plus its one device copy).

        Returns (X chunks (n_chunks, C, D), weight chunks (n_chunks, C)). chunk_size=None picks
        C so that a chunk's temporaries (row_width values per row: the (C, F) features and the
        (C, n_init K) densities) hold about 2^20 values (8 MB in float64): smaller chunks pay XLA's
        per-operation overhead more often, larger ones leave the cache (measured on the
        benchmark cases, benchmarks/).
        """
        n, d = X.shape
        n_dev = 1 if devices is None else (devices if isinstance(devices, int) else len(devices))
        if chunk_size is None:
            target = max(256, 2**20 // row_width)
            n_chunks = math.ceil(n / target)
            # chunks as even as possible, each a multiple of 8 rows and of the device count
            step = 8 * n_dev
            chunk_size = math.ceil(math.ceil(n / n_chunks) / step) * step
        elif chunk_size % n_dev:
            raise ValueError(f"chunk_size={chunk_size} must be a multiple of the {n_dev} devices")
        n_chunks = math.ceil(n / chunk_size)
        center = np.zeros(d) if center is None else center
        # copy ~32 MB of host rows at a time (whole chunks) into the preallocated device array
        per_copy = min(n_chunks, max(1, 2**22 // (chunk_size * d)))
        Xd = jnp.zeros((n_chunks, chunk_size, d), dtype)
        for first in range(0, n_chunks, per_copy):
            # the last block may be shorter (a second compiled shape, at most)
            block = np.zeros((min(per_copy, n_chunks - first), chunk_size, d), dtype)
            rows = X[first * chunk_size: (first + per_copy) * chunk_size]
            np.subtract(rows, center, out=block.reshape(-1, d)[: len(rows)])
            Xd = _write_chunks(Xd, block, first)
        w_buf = np.zeros(n_chunks * chunk_size, dtype=dtype)
        w_buf[:n] = w
        wd = jnp.asarray(w_buf.reshape(n_chunks, chunk_size))
        if devices is not None:
            devs = jax.devices()[:devices] if isinstance(devices, int) else list(devices)
            if len(devs) < n_dev:
                raise ValueError(f"devices={devices} asks for more devices than the "
                                 f"{len(jax.devices())} available")
            mesh = Mesh(np.array(devs), ("data",))
            # chunks are split along samples inside each chunk, so every device scans its part
            spec = PartitionSpec(None, "data")
            Xd = jax.device_put(Xd, NamedSharding(mesh, spec))
            wd = jax.device_put(wd, NamedSharding(mesh, spec))
        return Xd, wd

    # ------------------------------------------------------------------ inference
    def log_joint_matrix(self, X):
        """log p(x_n, z_n = k | theta) = log pi_k + log p(x_n | theta_k): (N, K)."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        params, center = self._params(), getattr(self, "_center", None)
        if center is not None:
            X = X - center
            params = self._translate(params, -center)
        return np.asarray(_log_joint(jnp.asarray(X), params, self._family()))

    def score_samples(self, X):
        """log p(x_n | theta) per sample: (N,)."""
        return np.asarray(jax.scipy.special.logsumexp(self.log_joint_matrix(X), axis=1))

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood per sample (weighted mean with sample_weight)."""
        per_sample = self.score_samples(X)
        return float(np.average(per_sample, weights=check_sample_weight(sample_weight,
                                                                          len(per_sample))))

    def predict_proba(self, X):
        """Posterior responsibilities p(z_n = k | x_n, theta): (N, K), rows sum to 1."""
        return np.asarray(elbo_lib.posterior_responsibilities(self.log_joint_matrix(X)))

    def predict(self, X):
        """Most probable component per sample: (N,) int."""
        return np.argmax(self.log_joint_matrix(X), axis=1)

    def elbo_em(self, X, q, sample_weight=None):
        """EM's ELBO E_q[log p(X, Z | theta)] + H(q) at the fitted theta; q (N, K)."""
        return float(elbo_lib.elbo_em(self.log_joint_matrix(X), jnp.asarray(q), sample_weight))

    def kl_to_posterior(self, X, q, sample_weight=None):
        """KL(q || p(Z | X, theta)) at the fitted theta; q (N, K)."""
        return float(elbo_lib.kl_to_posterior(self.log_joint_matrix(X), jnp.asarray(q),
                                              sample_weight))

    def sample(self, n_samples=1, random_state=None):
        """Draw (X (n_samples, D), labels (n_samples,)) from the fitted mixture."""
        check_is_fitted(self)
        check_int("n_samples", n_samples, 1)
        rng = check_random_state(self.random_state if random_state is None else random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        X = np.concatenate([self._sample_component(rng, k, c) for k, c in enumerate(counts)])
        y = np.repeat(np.arange(self.n_components), counts)
        return X, y

    # ------------------------------------------------------------------ model selection
    def _total_log_likelihood(self, X):
        return float(np.sum(self.score_samples(X)))

    def bic(self, X):
        """Bayesian information criterion: -2 log L + p log N (lower is better)."""
        X = self._validate_X(X, reset=False)
        return -2.0 * self._total_log_likelihood(X) + self._n_parameters() * np.log(len(X))

    def aic(self, X):
        """Akaike information criterion: -2 log L + 2 p (lower is better)."""
        return -2.0 * self._total_log_likelihood(X) + 2.0 * self._n_parameters()

    def icl(self, X):
        """Integrated completed likelihood (Biernacki et al. 2000) on the BIC scale:
        BIC - 2 sum_n log p(z_n = MAP label | x_n) (lower is better)."""
        log_joint = self.log_joint_matrix(X)
        log_post = log_joint - jax.scipy.special.logsumexp(log_joint, axis=1, keepdims=True)
        return self.bic(X) - 2.0 * float(np.sum(np.max(log_post, axis=1)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.init_params == "random" and self.random_state is None
        return tags
