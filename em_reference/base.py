"""Scikit-learn-style estimator shell around the EM loop, written once for every family (as
sklearn/mixture/_base.py). A family subclass says which family it fits and stores its fitted
attributes; everything else (validation, priors, centring, the data layout, initialisation,
restarts, warnings, scoring) is here."""

from __future__ import annotations

import dataclasses
import hashlib
import numbers
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from em_reference import config, tuning
from em_reference import elbo as elbo_lib
from em_reference.fast import layout
from em_reference.fast.engine import FastEngine
from em_reference.initialization import INIT_METHODS, initial_responsibilities
from em_reference.loop import ACCELERATIONS, Problem, certificate_and_floor, fit_em
from em_reference.priors import resolve_prior
from em_reference.textbook import TextbookEngine
from em_reference.validation import (as_2d_samples, check_choice, check_float, check_int,
                                     check_sample_weight)

ALGORITHMS = ("auto", "textbook", "fast")


class IllDefinedFitError(ValueError, FloatingPointError):
    """EM found no finite objective (a covariance that is not positive definite, a component
    collapsed onto too few points, degenerate data). A ValueError, as scikit-learn raises for
    an ill-defined covariance (so ``except ValueError`` code catches it), and still a
    FloatingPointError for code that caught that."""


@partial(jax.jit, static_argnames="family")
def _log_joint(X, params, family):
    return family.log_joint(X, params)


@partial(jax.jit, static_argnames="engine")
def _gradient(engine, data, params, prior, scale):
    return engine.gradient(data, params, None, prior, scale)


@partial(jax.jit, static_argnames="engine")
def _certificate_floor(engine, data, params, prior, scale):
    dtype = scale.dtype
    problem = Problem(engine, data, prior, jnp.zeros((), dtype), jnp.zeros((), dtype), scale,
                      jnp.sum(data[1]))
    return certificate_and_floor(problem, params, None)[1]


@partial(jax.jit, static_argnames="engine")
def _initial_m_step(data, weighted_resp, engine):
    return engine.initial_m_step(data, weighted_resp)


class MixtureEM(DensityMixin, BaseEstimator):
    """Shared fit/predict logic of the EM estimators (GaussianMixtureEM, PoissonMixtureEM,
    BernoulliMixtureEM). Their common parameters:

    n_components : K >= 1.
    tol : >= 0 (default 1e-10). EM stops when Aitken's estimate of how much the objective can
        still gain (em_reference.loop: Boehning et al. 1994, McNicholas et al. 2010) is below
        tol per unit of sample weight AND the certificate below holds. tol = 0 never stops
        early (a fixed number of iterations, for benchmarks). This is not scikit-learn's
        tol (a change per iteration): slow EM makes tiny changes far from its optimum.
    cert_tol : None (default: sqrt of the dtype's machine epsilon, 1.5e-8 in float64,
        3.5e-4 in float32) or a number > 0. The certificate: the norm of the gradient of the
        objective with respect to the unconstrained parameters (log weights, log-Cholesky
        covariances in units of the data's spread, means in those units, log rates, logit
        probabilities), per unit of sample weight, must be at most cert_tol at the stopping
        point and at the returned one; gradient_norm_ is its value at the returned point.
        Where rounding the parameters to the dtype alone leaves a larger gradient (a tight
        component far from the data's centre), that floor replaces cert_tol
        (certificate_floor_; em_reference.loop.certificate_and_floor).
    max_iter : >= 0 (default 10,000): the most E-steps (passes over the data); 0 returns the
        initialisation (lower_bound_ its objective, converged_ False, no warning).
    n_init : restarts (run in parallel); the best objective wins.
    warm_start : False (default) | True: a fit after a fit starts from the fitted parameters
        (one restart, n_init ignored), as scikit-learn's; on the same data and settings the
        stopping rule also continues from the earlier fit's last objectives, so repeated
        max_iter=1 warm fits detect convergence as one long fit would.
    verbose : 0 (default) | 1 | 2; verbose_interval : >= 1 (default 10). After the fit (the
        loop is compiled: nothing prints while it runs), print for each restart
        "Initialization r", every verbose_interval-th E-step ("  Iteration i"; verbose=2 with
        its objective and change) and whether it converged, in scikit-learn's words.
    init_params : "kmeans" | "k-means++" | "random_from_data" | "random", as scikit-learn.
    prior : None (maximum likelihood) | "default" (the family's weakly informative prior) |
        a prior object; MAP-EM then maximises log-likelihood + log prior.
    assignment : "soft" (EM) | "hard" (classification EM: objective sum_n max_k
        log p(x_n, z_n = k); stops at a fixed point of its assignment step).
    fixed_params : parameter names the M-step leaves at their initial values.
    acceleration : None (default: plain EM) | "squarem" (Varadhan & Roland 2008, SqS3 with
        the monotone safeguard; soft EM only): the same optimum in far fewer E-steps where EM
        is slow; n_iter_ still counts E-steps.
    algorithm : "auto" (default) | "textbook" | "fast". "textbook" runs EM as written
        (em_reference.textbook: the (N, K) log joint, responsibilities, the M-step from
        them); "fast" the exponential-family kernel (em_reference.fast: chunked, restarts in
        one product); "auto" the textbook path for small problems
        (N * K * n_init <= tuning.TEXTBOOK_MAX_VALUES, no chunk_size / devices), the kernel
        otherwise. On the textbook path a restart runs as it would alone, so n_init restarts
        never end below the single fit from the same random_state.
        The two agree to rounding (tests/em_reference/test_paths.py).
    dtype : "float64" (default) | "float32".
    random_state : seeds the initialisation; k-means, k-means++ and the random starts draw
        from check_random_state(random_state) itself, as scikit-learn's GaussianMixture does,
        so the same random_state gives scikit-learn's start.

    The defaults are research defaults: every fit either reaches a certified optimum or says
    (ConvergenceWarning) which criterion it missed. Fitted attributes: lower_bound_ (EM's
    objective at the returned parameters: log-likelihood, with the family's regulariser if
    any, + log prior for MAP-EM; classification log-likelihood for hard EM), lower_bounds_
    (after each E-step, the objective of the best point so far; the last entry at the
    returned parameters), log_likelihood_ (the log-likelihood alone there), converged_
    (True only at a certified optimum: the stopping rule held and gradient_norm_ <=
    max(cert_tol, certificate_floor_); hard EM: a fixed point), gradient_norm_ (nan for hard
    EM), certificate_floor_ (the gradient norm per sample that rounding the returned
    parameters to the dtype leaves: about 1e-15 on ordinary data, where cert_tol decides),
    distance_to_optimum_ (the
    Aitken estimate per sample at the last check; inf when it was not defined), n_iter_
    (E-steps), prior_, restart_lower_bounds_ (n_init,) (every restart's final objective)
    and restart_converged_ (n_init,) (whether each restart is certified, as converged_).

    A subclass defines:

    _family()                      -> the em_reference.family.MixtureFamily it fits
    _validate_family_params()      extra hyper-parameter checks
    _validate_samples(X)           extra data checks (X already (N, D) float64)
    _default_prior(X, w)           the prior prior="default" stands for
    _user_init(n_features)         dict of user-given initial parameters (validated)
    _store(params) / _params()     fitted attributes <-> parameter NamedTuple
    _sample_component(rng, k, n)   n draws from component k
    """

    # ------------------------------------------------------------------ validation
    def _validate_common_params(self):
        check_int("n_components", self.n_components, 1)
        check_float("tol", self.tol, 0.0)
        if self.cert_tol is not None:
            ok = (isinstance(self.cert_tol, numbers.Real) and not isinstance(self.cert_tol, bool)
                  and np.isfinite(self.cert_tol) and self.cert_tol > 0)
            if not ok:
                raise ValueError("cert_tol must be None (the square root of the dtype's machine "
                                 f"epsilon) or a finite number > 0, got {self.cert_tol!r}")
        check_int("max_iter", self.max_iter, 0)
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise ValueError(f"warm_start must be True or False, got {self.warm_start!r}")
        check_int("verbose", int(self.verbose) if isinstance(self.verbose, (bool, np.bool_))
                  else self.verbose, 0)
        check_int("verbose_interval", self.verbose_interval, 1)
        check_choice("acceleration", self.acceleration, ACCELERATIONS)
        check_int("n_init", self.n_init, 1)
        check_choice("init_params", self.init_params, INIT_METHODS)
        check_choice("assignment", self.assignment, ("soft", "hard"))
        check_choice("dtype", self.dtype, ("float64", "float32"))
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        if self.acceleration is not None and self.assignment == "hard":
            raise ValueError(f"acceleration={self.acceleration!r} extrapolates soft EM's smooth "
                             "map; hard EM (assignment='hard') takes acceleration=None")
        fixed = tuple(self.fixed_params or ())
        for name in fixed:
            check_choice("fixed_params entry", name, tuple(self._family().params_class._fields))
        self._validate_family_params()

    def _validate_X(self, X, reset):
        X = as_2d_samples(self, X, reset)
        return self._validate_samples(X)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None, *, chunk_size=None, devices=None,
            row_bucket=None):
        """Fit by EM (MLE, or MAP-EM with a prior), best of n_init restarts run in parallel.

        X: (N, D) or (N,). sample_weight: (N,) non-negative frequency weights (a row with
        weight 3 counts as three identical rows). chunk_size: stream the E-step over chunks of
        this many rows, rebuilding each chunk's features T(x) every iteration (memory
        O(chunk_size * F), never the (N, K) responsibilities or the (N, F) features);
        None picks the chunk size and keeps T(X) for the whole fit when it takes at most
        tuning.FEATURE_CACHE_BYTES (128 MB), which is faster. chunk_size and devices run the
        fast kernel (algorithm="textbook" refuses them).
        devices: an int or a list of jax devices; X is sharded along samples over them.
        row_bucket: None (default: the data laid out at their own size) or an int B >= 1:
        the rows are padded with zero-weight rows up to the next of B, 2B, 4B, ... (a
        zero-weight row changes no sum: the fit equals the unpadded one to rounding), so that
        fits of differently sized data of the same D, K and options share their compiled
        programs within a process (a grid of small problems, where compiling the loop takes
        seconds and running it milliseconds).
        """
        return self._fit(X, sample_weight, chunk_size, devices, row_bucket)

    def fit_predict(self, X, y=None, sample_weight=None, *, chunk_size=None, devices=None,
                    row_bucket=None):
        """Fit, then return the labels (N,) of X under the fitted model."""
        return self._fit(X, sample_weight, chunk_size, devices, row_bucket).predict(X)

    def _use_textbook(self, n_samples, chunk_size, devices, n_init):
        """algorithm: "textbook" | "fast" | "auto" (the textbook path for small problems held
        whole: at most tuning.TEXTBOOK_MAX_VALUES values N * K * n_init)."""
        if self.algorithm == "textbook":
            if chunk_size is not None or devices is not None:
                raise ValueError("chunk_size and devices stream or shard the fast kernel's "
                                 "E-step: use algorithm='fast' or 'auto' with them, not "
                                 "'textbook'")
            return True
        return (self.algorithm == "auto" and chunk_size is None and devices is None
                and n_samples * self.n_components * n_init <= tuning.TEXTBOOK_MAX_VALUES)

    # the whole fit, host preparation included: one numpy BLAS call (centring X) left
    # OpenBLAS's workers spinning through the first ~0.1 s of the EM loop (config.one_blas_thread)
    @config.one_blas_thread()
    def _fit(self, X, sample_weight, chunk_size, devices, row_bucket=None):
        self._validate_common_params()
        X = self._validate_X(X, reset=True)
        w = check_sample_weight(sample_weight, X.shape[0])
        if np.count_nonzero(w) < self.n_components:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                             f"{self.n_components}, n_samples = {np.count_nonzero(w)}")
        if chunk_size is not None:
            check_int("chunk_size", chunk_size, 1)
        n_rows = layout.bucket_rows(X.shape[0], row_bucket)
        k, d = self.n_components, X.shape[1]
        family = self._family()
        # warm_start: continue from the fitted parameters (absolute coordinates, read before
        # anything is overwritten), one restart
        warm = self._params() if self.warm_start and hasattr(self, "converged_") else None
        n_init = 1 if warm is not None else self.n_init
        prior = resolve_prior(self.prior, family.prior_class,
                              lambda: self._default_prior(X, w))
        self.prior_ = None if prior is None else self._validate_prior(prior, d, k)
        # EM runs on data relative to their mean (families with a location): scatter matrices
        # from raw moments lose digits when the mean is far from zero compared with the spread
        self._center = family.data_center(X, w)
        prior = self.prior_
        if prior is not None and self._center is not None:
            prior = family.translate(prior, -self._center)

        dtype = jnp.dtype(self.dtype)
        cast = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)  # noqa: E731
        hard = self.assignment == "hard"
        if warm is not None and np.shape(warm[1])[-1] != d:
            raise ValueError(f"warm_start=True: X has {d} features, the fitted model "
                             f"{np.shape(warm[1])[-1]}")
        if self._use_textbook(X.shape[0], chunk_size, devices, n_init):
            centred = X if self._center is None else X - self._center
            data = (jnp.asarray(layout.pad_rows(centred, n_rows), dtype),
                    jnp.asarray(layout.pad_rows(w, n_rows), dtype))
            engine = TextbookEngine(family, hard)
            resp_layout = lambda resp: jnp.asarray(layout.pad_rows(resp, n_rows), dtype)  # noqa: E731
        else:
            # per row, a chunk holds the features and every restart's K log joints
            n_feat = family.feature_width(d)
            chunk = layout.chunk_rows(n_rows, n_feat + n_init * k, chunk_size, devices)
            data = layout.lay_out(X, w, self._center, chunk, devices, dtype, n_rows)
            cache = layout.keep_features(data[0].shape[0], chunk, n_feat, dtype, chunk_size)
            engine = FastEngine(family, hard, cache)
            resp_layout = lambda resp: layout.chunks_like(resp, data[0])  # noqa: E731
        # initial responsibilities (k-means, seed points) do not depend on where the origin is
        init = self._initial_params(X, w, data, engine, resp_layout, n_init, warm)
        self._cert_tol = self._default_cert_tol(dtype) if self.cert_tol is None else self.cert_tol
        # the unit of the unconstrained locations (SQUAREM's steps, the certificate)
        self._scale = family.data_scale(X, w)
        # a warm start on the same problem continues the stopping rule's history (scikit-learn
        # detects convergence over repeated max_iter=1 warm fits); any other start has none
        problem_key = self._problem_key(X, w)
        past = (getattr(self, "_history", None)
                if warm is not None and getattr(self, "_problem_key_", None) == problem_key
                else None)
        history = (jnp.full(n_init, -jnp.inf, dtype), jnp.full(n_init, jnp.nan, dtype))
        if past is not None:
            history = cast((np.asarray([past[0]]), np.asarray([past[1]])))
        def run(engine):
            return jax.device_get(fit_em(
                cast(init), data, None if prior is None else cast(prior),
                jnp.asarray(self.tol, dtype), jnp.asarray(self._cert_tol, dtype),
                self._scale, history, engine=engine, max_iter=self.max_iter,
                acceleration=self.acceleration))

        state = run(engine)
        if isinstance(engine, FastEngine) and not np.all(np.isfinite(
                state.trace[np.arange(n_init), state.n_iter]) & ~state.failed):
            # a restart failed, possibly where the expanded E-step cancels: the fit again,
            # with the difference form wherever it would (engine docstring)
            state = run(dataclasses.replace(engine, stable_fallback=True))
        config.release_compiled_code()  # bounded memory over many differently shaped fits
        self._store_fit(state, family, hard)
        self._problem_key_ = problem_key
        if self.verbose:
            self._print_trace(state)
        return self

    def _problem_key(self, X, w):
        """What a warm start's carried history is valid for: the data, the weights and every
        hyper-parameter (the objective they define). Computed only for warm starts."""
        if not self.warm_start:
            return None
        digest = hashlib.blake2b(np.ascontiguousarray(X).tobytes(), digest_size=16)
        digest.update(np.ascontiguousarray(w).tobytes())
        ignored = ("max_iter", "verbose", "verbose_interval", "n_init", "init_params",
                   "random_state", "warm_start")  # none of them changes the objective
        params = {k: v for k, v in self.get_params().items() if k not in ignored}
        return (X.shape, digest.hexdigest(), repr(sorted(params.items())))

    def _print_trace(self, state):
        """scikit-learn's verbose messages, from the traces the compiled loop returned."""
        for r in range(len(state.n_iter)):
            print(f"Initialization {r}")
            n_iter, trace = int(state.n_iter[r]), np.asarray(state.trace[r], np.float64)
            for i in range(self.verbose_interval, n_iter + 1, self.verbose_interval):
                if self.verbose >= 2:
                    change = trace[i - 1] - trace[i - 2] if i >= 2 else np.nan
                    print(f"  Iteration {i}\t objective {trace[i - 1]:.5f}\t change "
                          f"{change:.5g}")
                else:
                    print(f"  Iteration {i}")
            status = "converged" if bool(state.converged[r]) else "did not converge"
            print(f"Initialization {status}." + (f"\t lower bound {trace[n_iter]:.5f}."
                                                  if self.verbose >= 2 else ""))

    @staticmethod
    def _default_cert_tol(dtype):
        """cert_tol=None: sqrt(machine epsilon), 1.5e-8 in float64 and 3.5e-4 in float32, the
        gradient (per sample) that rounding in the E-step's sums still resolves."""
        return float(np.sqrt(np.finfo(dtype).eps))

    def _store_fit(self, state, family, hard):
        """The best restart's parameters, objective, certificate and flags as attributes."""
        finals = np.array([state.trace[i, state.n_iter[i]] for i in range(len(state.n_iter))])
        if not np.any(np.isfinite(finals)):
            raise IllDefinedFitError(
                "EM produced a non-finite objective in every restart (a component collapsed "
                "onto too few points or the data are degenerate); increase reg_covar, use a "
                "prior (prior='default') or fewer components.")
        best = int(np.nanargmax(np.where(np.isfinite(finals), finals, -np.inf)))
        params = family.params_class(*(np.asarray(leaf[best], np.float64)
                                       for leaf in state.params))
        self._store(params if self._center is None else family.translate(params, self._center))
        self.n_iter_ = int(state.n_iter[best])
        self.lower_bounds_ = np.asarray(state.trace[best, : self.n_iter_ + 1], np.float64)
        self.lower_bound_ = float(finals[best])
        self.log_likelihood_ = float(state.log_likelihood[best])
        self.gradient_norm_ = float(state.grad_norm[best])
        self.certificate_floor_ = float(state.grad_floor[best])
        self.distance_to_optimum_ = float(state.distance[best])
        # the loop stopped on its rule at the last point it checked; the certificate is then
        # re-evaluated at the point returned (one M-step further)
        certified = hard or self.gradient_norm_ <= max(self._cert_tol, self.certificate_floor_)
        self.converged_ = bool(state.converged[best]) and certified
        # every restart's final objective and certificate: how many distinct optima the
        # restarts found, and how often each (nan/-inf: a restart that went non-finite)
        self._history = (float(state.objective[best]), float(state.change[best]))
        self.restart_lower_bounds_ = finals.astype(np.float64)
        self.restart_converged_ = np.array(
            [bool(state.converged[i]) and (hard or float(state.grad_norm[i])
                                           <= max(self._cert_tol, float(state.grad_floor[i])))
             for i in range(len(finals))])  # n_init, or 1 for a warm start
        if bool(state.failed[best]):
            warnings.warn(f"EM stopped after {self.n_iter_} E-steps: the next update was not "
                          "finite; the last finite parameters are kept.", RuntimeWarning,
                          stacklevel=tuning.WARN_AT_CALLER + 1)
        elif bool(state.converged[best]) and not certified:
            warnings.warn(f"EM's stopping rule held after {self.n_iter_} E-steps, but the "
                          f"gradient norm at the returned point is {self.gradient_norm_:.3g} "
                          f"per sample (cert_tol={self._cert_tol:.3g}, rounding floor "
                          f"{self.certificate_floor_:.3g}): not certified.",
                          ConvergenceWarning, stacklevel=tuning.WARN_AT_CALLER + 1)
        elif not self.converged_ and self.max_iter > 0:
            if hard:
                reason = "no fixed point of the assignment step was reached"
            else:
                reason = (f"the estimated distance to the optimum is "
                          f"{self.distance_to_optimum_:.3g} per sample (tol={self.tol:g}) and "
                          f"the gradient norm at the returned point {self.gradient_norm_:.3g} "
                          f"per sample (cert_tol={self._cert_tol:.3g})")
            warnings.warn(f"EM did not reach a certified optimum in max_iter={self.max_iter} "
                          f"E-steps: {reason}; increase max_iter"
                          + ("" if hard or self.acceleration else
                             " or use acceleration='squarem'") + ".", ConvergenceWarning,
                          stacklevel=tuning.WARN_AT_CALLER + 1)

    def _validate_prior(self, prior, n_features, n_components):
        return prior.validate(n_features, n_components)

    def _initial_params(self, X, w, data, engine, resp_layout, n_init, warm):
        """A batch of initial parameters (leading axis: n_init restarts): warm (the fitted
        parameters, warm_start), the user's, or the MLE M-step from initial responsibilities
        (k-means labels, seed points) with the user's values on top. X (N, D) as given; data
        laid out for the engine (centred)."""
        family = engine.family
        if warm is not None:
            start = warm if self._center is None else family.translate(warm, -self._center)
            return jax.tree.map(lambda leaf: np.asarray(leaf)[None], start)
        user = self._user_init(X.shape[1])
        if self._center is not None:
            user = family.translate(user, -self._center)
        rng = check_random_state(self.random_state)
        batch = []
        for _ in range(n_init):
            if len(user) == len(family.params_class._fields):
                start = user
            else:
                resp = initial_responsibilities(X, self.n_components, self.init_params, rng, w)
                mle = _initial_m_step(data, resp_layout(resp * w[:, None]), engine)
                start = {**mle._asdict(), **user}
            batch.append(family.params_class(**{k: np.asarray(v) for k, v in start.items()}))
        return jax.tree.map(lambda *leaves: np.stack(leaves), *batch)

    # ------------------------------------------------------------------ inference
    def certificate(self, X, sample_weight=None):
        """The certificate at the current parameters on data X: the norm of the gradient of
        EM's objective (log-likelihood with the family's regulariser, + log prior with a
        prior) with respect to the unconstrained parameters, per unit of sample weight, by
        automatic differentiation through the textbook E-step (the fit's gradient_norm_ is
        this on the training data; converged_ needs it <= max(cert_tol, certificate_floor_)).
        Soft EM's objective."""
        family, data, params, prior, scale = self._textbook_problem(X, sample_weight)
        grad = _gradient(TextbookEngine(family), data, params, prior, scale)
        return float(np.sqrt(sum(np.sum(np.asarray(getattr(grad, name)) ** 2)
                                 for name in params._fields if name not in family.fixed))
                     / np.sum(data[1]))

    def certificate_floor(self, X, sample_weight=None):
        """The certificate that rounding the current parameters to float64 alone leaves on
        data X (em_reference.loop.certificate_and_floor, through the textbook E-step): where
        it exceeds cert_tol it is the fit's threshold instead (certificate_floor_)."""
        family, data, params, prior, scale = self._textbook_problem(X, sample_weight)
        return float(_certificate_floor(TextbookEngine(family), data, params, prior, scale))

    def _textbook_problem(self, X, sample_weight):
        """(family, (X, w), params, prior, scale) as the fit saw them: relative to the fit's
        origin, in float64 jax arrays."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        w = check_sample_weight(sample_weight, X.shape[0])
        family, params = self._family(), self._params()
        prior = getattr(self, "prior_", None)
        center = getattr(self, "_center", None)
        if center is not None:
            X = X - center
            params = family.translate(params, -center)
            prior = None if prior is None else family.translate(prior, -center)
        scale = getattr(self, "_scale", None)
        scale = jnp.asarray(family.data_scale(X, w) if scale is None else scale)
        params = jax.tree.map(jnp.asarray, params)
        return family, (jnp.asarray(X), jnp.asarray(w)), params, prior, scale

    def em_decomposition(self, X, n_steps=10, sample_weight=None, *, row_bucket=None):
        """``n_steps`` iterations of plain EM (no prior, no reg_covar) from the fitted
        parameters, each split into the M-step's gain and the KL its E-step closes (PRML fig.
        9.14): em_reference.elbo.em_decomposition. Fit with ``max_iter=0`` to start from the
        initialisation. row_bucket: as fit's (zero-weight rows, a shared compiled step)."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        w = check_sample_weight(sample_weight, X.shape[0])
        check_int("n_steps", n_steps, 1)
        family, params = self._family(), self._params()
        center = getattr(self, "_center", None)
        if center is not None:  # the same data relative to the same origin as the fit
            X = X - center
            params = family.translate(params, -center)
        n_rows = layout.bucket_rows(X.shape[0], row_bucket)
        return elbo_lib.em_decomposition(layout.pad_rows(X, n_rows), layout.pad_rows(w, n_rows),
                                         params, family, n_steps)

    def log_joint_matrix(self, X):
        """log p(x_n, z_n = k | theta) = log pi_k + log p(x_n | theta_k): (N, K)."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        family, params = self._family(), self._params()
        center = getattr(self, "_center", None)
        if center is not None:
            X = X - center
            params = family.translate(params, -center)
        return np.asarray(_log_joint(jnp.asarray(X), params, family))

    def score_samples(self, X):
        """log p(x_n | theta) per sample: (N,)."""
        return np.asarray(jax.scipy.special.logsumexp(self.log_joint_matrix(X), axis=1))

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood per sample (weighted mean with sample_weight)."""
        per_sample = self.score_samples(X)
        return float(np.average(per_sample, weights=check_sample_weight(sample_weight,
                                                                          len(per_sample))))

    def predict_proba(self, X):
        """Posterior responsibilities p(z_n = k | x_n, theta): (N, K)."""
        return np.asarray(elbo_lib.posterior_responsibilities(self.log_joint_matrix(X)))

    def predict(self, X):
        """Most probable component of each sample: (N,)."""
        return np.argmax(self.log_joint_matrix(X), axis=1)

    # the ELBO view (Bishop 9.4): log p(X | theta) = elbo_em(q, theta) + KL(q || posterior)
    def elbo_em(self, X, q, sample_weight=None):
        """E_q[log p(X, Z | theta)] + H(q) at the fitted theta; q (N, K)."""
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
    def _n_parameters(self):
        return self._family().n_parameters(self.n_components, self.n_features_in_)

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
