"""The evidence log p(X) of a NumPyro model with global parameters, by bridge sampling on its
NUTS draws: a reference every ELBO is judged by (KL gap = log p(X) - ELBO), independent of any
variational method.

Bridge sampling (Meng & Wong 1996), as R's bridgesampling (Gronau et al. 2017, method
"normal"). On the unconstrained space u (numpyro's bijections, biject_to(site.support)) the
posterior is q(u)/p(X) with q(u) = p(X, theta(u)) |d theta/du| = exp(-potential energy); a
proposal g (a multivariate normal fitted to the first half of every chain) is drawn N2 times
and, with the second halves (N1 draws), the iterative scheme

    r <- [1/N2 sum_j l2_j / (s1 l2_j + s2 r)] / [1/N1 sum_i 1 / (s1 l1_i + s2 r)],
    l = q / g,  s1 = N1eff / (N1eff + N2),  s2 = N2 / (N1eff + N2)

(N1eff the posterior draws' effective sample size for the mean, ArviZ, median over the
coordinates) converges to p(X). Its relative mean
squared error (Fruhwirth-Schnatter 2004, bridgesampling's error_measures, with s = N / (N1 + N2)):

    RE^2 = Var_g(f1) / (N2 E_g(f1)^2) + Var_p(f2) / (ESS(f2) E_p(f2)^2),
    f1 = p/(s1 p + s2 g) at the proposal draws, f2 = g/(s1 p + s2 g) at the posterior draws,

ESS(f2) from ArviZ over the chains (the normalised spectral density at 0 of Fruhwirth-Schnatter;
bridgesampling's coda::spectrum0.ar is the unnormalised one). The returned standard error of
log p(X) is RE (delta method).

Label switching. A mixture's posterior has K! symmetric modes (its components are
exchangeable); NUTS usually visits one, and the draws are relabelled to one anyway. The
proposal is therefore symmetrised over the K! permutations of the component axis,

    g_sym(u) = 1/K! sum_sigma g(T_sigma u) |det dT_sigma/du|,

T_sigma permuting the components in the constrained space (the simplex weights and every site
of the plate named "components", models.relabel.component_axes). Every term of the estimator is
then invariant under permutations, so draws from one mode give the answer draws from all K!
would (Fruhwirth-Schnatter 2004; Chib's estimator without this is off by up to log K!, Neal
1999). Cost: K! proposal densities per draw: K = 6 (720 permutations, the default
max_permutations) took about 20 s for 8000 draws on the 2-core CI box (loaded; compilation
included), K = 7 (5040) is about 7 times that. Above max_permutations, label_switching="auto"
uses the single-mode proposal and adds log K!, which is right only when the K! modes do not
overlap (well-separated components); a warning says so. How wrong it can be: on a 10-point
Poisson mixture with K = 3 (benchmarks/evidence_check.py) the single-mode estimate was 1.62
nats below the evidence, not log 3! = 1.79: the modes overlap.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from dataclasses import dataclass, field

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.distributions import biject_to
from numpyro.infer.util import potential_energy
from scipy.special import expit, logsumexp

from em_reference.config import one_blas_thread
from models._model_info import inspect_model, prepare_args, split_args
from models.relabel import component_axes, relabel_to_reference
from models.result import FitResult

LABEL_SWITCHING = ("auto", "symmetrize", "separated", "none")


@dataclass(frozen=True)
class EvidenceResult:
    """log_evidence: the estimate of log p(X); log_evidence_se: its Monte-Carlo standard error;
    method: "bridge"; diagnostics: n_posterior, n_proposal, ess_posterior, ess_f2, re2,
    n_iterations, converged, label_switching, n_permutations, log_k_factorial (added for
    "separated"), proposal_dim, nuts (the NUTS run's diagnostics, when this call ran it);
    wall_time: seconds, NUTS included."""

    log_evidence: float
    log_evidence_se: float
    method: str
    diagnostics: dict = field(default_factory=dict)
    wall_time: float = 0.0


def log_evidence(model, *args, method="bridge", posterior=None, seed=0, num_warmup=500,
                 num_samples=1000, num_chains=4, nuts_options=None, label_switching="auto",
                 max_permutations=720, tol=1e-10, max_iter=1000, model_kwargs=None, **kwargs):
    """log p(X) of ``model(*args, **kwargs)`` and its Monte-Carlo standard error.

    method : "bridge" (the registry METHODS).
    posterior : None (NUTS is run here: models.fit_nuts with num_warmup, num_samples,
        num_chains, seed and nuts_options), a FitResult of fit_nuts, or a dict site ->
        constrained draws of shape (chains, draws, *site_shape) (at least 2 draws per chain).
    label_switching : "auto" ("symmetrize" for a mixture with K! <= max_permutations,
        "separated" above, "none" without components), "symmetrize", "separated" (single-mode
        proposal + log K!), "none" (no correction: wrong by up to log K! for a mixture).
    tol, max_iter : the iterative scheme stops when |r_new - r| / r_new < tol.
    seed : NUTS's and the proposal draws' seed.
    Returns an EvidenceResult. Raises ValueError on a model with param sites or without latent
    sites, on bad options, and on draws that do not match the model's sites.
    """
    t_start = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if label_switching not in LABEL_SWITCHING:
        raise ValueError(f"label_switching must be one of {LABEL_SWITCHING}, "
                         f"got {label_switching!r}")
    kwargs = {**kwargs, **(model_kwargs or {})}
    args, kwargs = prepare_args(model, args, kwargs)
    info = inspect_model(model, args, kwargs)
    if info.params:
        raise ValueError(f"the evidence needs every parameter as a sample site with a prior; "
                         f"the model has param sites {sorted(info.params)}")
    if not info.latent:
        raise ValueError("the model has no latent sample sites: nothing to integrate")
    nuts_diag = None
    if posterior is None:
        from models.nuts_fit import fit_nuts

        posterior = fit_nuts(model, *args, seed=seed, num_warmup=num_warmup,
                             num_samples=num_samples, num_chains=num_chains,
                             model_kwargs=kwargs, **(nuts_options or {}))
    if isinstance(posterior, FitResult):
        nuts_diag = {k: posterior.diagnostics.get(k) for k in
                     ("r_hat_max", "ess_bulk_min", "divergences", "message")}
        posterior = {name: np.asarray(posterior.inference_data.posterior[name].values)
                     for name in info.latent}
    draws = _check_draws(posterior, info)
    result = METHODS[method](model, args, kwargs, info, draws, seed=seed,
                             label_switching=label_switching,
                             max_permutations=max_permutations, tol=tol, max_iter=max_iter)
    if nuts_diag is not None:
        result.diagnostics["nuts"] = nuts_diag
    return EvidenceResult(result.log_evidence, result.log_evidence_se, method,
                          result.diagnostics, time.perf_counter() - t_start)


def _check_draws(posterior, info):
    if not isinstance(posterior, dict):
        raise ValueError("posterior must be None, a FitResult or a dict of draws, got "
                         f"{type(posterior).__name__}")
    missing = sorted(set(info.latent) - set(posterior))
    if missing:
        raise ValueError(f"posterior lacks draws of the latent sites {missing}")
    draws = {name: np.asarray(posterior[name], dtype=float) for name in info.latent}
    shapes = {v.shape[:2] for v in draws.values()}
    for name, v in draws.items():
        if v.ndim < 2 or v.shape[2:] != info.shapes[name]:
            raise ValueError(f"posterior[{name!r}] must have shape (chains, draws) + "
                             f"{info.shapes[name]}, got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"posterior[{name!r}] contains NaN or inf")
    if len(shapes) != 1:
        raise ValueError(f"every site needs the same (chains, draws), got {sorted(shapes)}")
    if next(iter(shapes))[1] < 4:
        raise ValueError("bridge sampling needs at least 4 draws per chain (half of each "
                         "chain fits the proposal, the other half enters the bridge)")
    return draws


# ---------------------------------------------------------------- the unconstrained space
class _Space:
    """The bijection between constrained draws and flat unconstrained vectors u (P,), the
    log-Jacobian log|d theta/du|, and the permutations of the components."""

    def __init__(self, info, axes):
        self.names = sorted(info.latent)
        self.transforms = {n: biject_to(info.latent[n]["fn"].support) for n in self.names}
        self.axes = axes
        example = {n: jnp.zeros(self.transforms[n].inverse_shape(info.shapes[n]))
                   for n in self.names}
        flat, self.unravel = ravel_pytree(example)
        self.dim = flat.shape[0]

    def unconstrain(self, theta):
        return ravel_pytree({n: self.transforms[n].inv(theta[n]) for n in self.names})[0]

    def constrain(self, u):
        z = self.unravel(u)
        return {n: self.transforms[n](z[n]) for n in self.names}, z

    def log_jacobian(self, u):
        theta, z = self.constrain(u)
        return sum(jnp.sum(self.transforms[n].log_abs_det_jacobian(z[n], theta[n]))
                   for n in self.names)

    def permute(self, u, perm):
        """T_perm(u): component i of the result is component perm[i] of u's."""
        theta, _ = self.constrain(u)
        theta = {n: (jnp.take(v, perm, axis=self.axes[n]) if n in self.axes else v)
                 for n, v in theta.items()}
        return self.unconstrain(theta)


def _permutations(info, axes, label_switching, max_permutations):
    """(mode, (n_perm, K) int array of permutations, K) for the label-switching treatment."""
    sizes = {info.shapes[n][a] for n, a in axes.items()}
    k = sizes.pop() if len(sizes) == 1 else 1
    if label_switching == "auto":
        label_switching = ("none" if k == 1 else "symmetrize"
                           if math.factorial(k) <= max_permutations else "separated")
    if label_switching in ("symmetrize", "separated") and k == 1:
        label_switching = "none"  # one component (or none): nothing to permute
    if label_switching == "symmetrize":
        if math.factorial(k) > max_permutations:
            raise ValueError(f"K = {k}: {math.factorial(k)} permutations exceed "
                             f"max_permutations={max_permutations}; raise it or use "
                             "label_switching='separated'")
        return label_switching, np.array(list(itertools.permutations(range(k)))), k
    return label_switching, np.arange(k)[None], k


# ---------------------------------------------------------------- bridge sampling
def bridge_sampling(model, args, kwargs, info, draws, *, seed, label_switching,
                    max_permutations, tol, max_iter):
    """Bridge sampling on draws (site -> (chains, draws, ...)); see the module docstring."""
    axes = component_axes(info)
    mode, perms, k = _permutations(info, axes, label_switching, max_permutations)
    n_chains, n_draws = next(iter(draws.values())).shape[:2]
    if axes and mode != "none":
        # one labelling for all draws: the proposal then fits one mode
        flat = {n: v.reshape((n_chains * n_draws,) + v.shape[2:]) for n, v in draws.items()}
        flat, _ = relabel_to_reference(flat, axes)
        draws = {n: v.reshape((n_chains, n_draws) + v.shape[1:]) for n, v in flat.items()}
    space = _Space(info, axes)
    margs = split_args(args, kwargs)
    with one_blas_thread():
        u = np.asarray(jax.jit(jax.vmap(space.unconstrain))(
            {n: jnp.asarray(v.reshape((-1,) + v.shape[2:])) for n, v in draws.items()}))
    u = u.reshape(n_chains, n_draws, space.dim)
    half = n_draws // 2
    fit_part, bridge_part = u[:, :half].reshape(-1, space.dim), u[:, half:]
    mean = fit_part.mean(0)
    cov = np.atleast_2d(np.cov(fit_part, rowvar=False))
    cov = cov + 1e-10 * np.trace(cov) / space.dim * np.eye(space.dim)  # a constant coordinate
    chol = np.linalg.cholesky(cov)

    n1 = bridge_part.shape[0] * bridge_part.shape[1]
    n2 = n1
    key_draws, key_perm = jax.random.split(jax.random.PRNGKey(seed))
    z = np.asarray(jax.random.normal(key_draws, (n2, space.dim)))
    proposal = mean + z @ chol.T
    which = np.asarray(jax.random.randint(key_perm, (n2,), 0, len(perms)))

    def log_gauss(v):
        w = jax.scipy.linalg.solve_triangular(chol, v - mean, lower=True)
        return (-0.5 * jnp.sum(w**2) - jnp.sum(jnp.log(jnp.diag(chol)))
                - 0.5 * space.dim * math.log(2 * math.pi))

    def log_proposal(v):
        """log g_sym(v) = log mean over sigma of g(T_sigma v) |J_f(v)| / |J_f(T_sigma v)|."""
        ladj = space.log_jacobian(v)

        def one(perm):
            moved = space.permute(v, perm)
            return log_gauss(moved) + ladj - space.log_jacobian(moved)
        terms = jax.lax.map(one, jnp.asarray(perms)) if len(perms) > 1 else one(
            jnp.asarray(perms[0]))[None]
        return jax.scipy.special.logsumexp(terms) - math.log(len(perms))

    def log_target(v, dyn):
        a, kw = margs.rebuild(dyn)
        return -potential_energy(model, a, kw, space.unravel(v))

    with one_blas_thread():
        # a proposal draw is g's draw moved by a random permutation: a draw of g_sym
        proposal = np.asarray(jax.jit(jax.vmap(space.permute))(
            jnp.asarray(proposal), jnp.asarray(perms[which])))
        both = jnp.asarray(np.concatenate([bridge_part.reshape(-1, space.dim), proposal]))
        log_q = np.asarray(jax.jit(jax.vmap(log_target, (0, None)))(both, margs.dyn))
        log_g = np.asarray(jax.jit(jax.vmap(log_proposal))(both))
    if not (np.all(np.isfinite(log_q[:n1])) and np.all(np.isfinite(log_g))):
        raise FloatingPointError("bridge sampling: a non-finite log density at the posterior "
                                 "draws or of the proposal")
    # proposal draws can fall where the model's density underflows: they add zero to the sums
    l1 = log_q[:n1] - log_g[:n1]
    l2 = np.where(np.isfinite(log_q[n1:]), log_q[n1:], -np.inf) - log_g[n1:]
    ess = float(np.median(_ess(bridge_part)))
    log_ml, n_iter, converged = _iterate(l1, l2, min(ess, n1), tol, max_iter)
    re2, ess_f2 = _relative_mse(l1.reshape(bridge_part.shape[:2]), l2, log_ml)
    log_k_fact = math.lgamma(k + 1) if mode == "separated" else 0.0
    if mode == "separated":
        warnings.warn(f"K = {k}: the evidence adds log K! = {log_k_fact:.3f} to a single-mode "
                      "bridge estimate, which is right only when the K! modes of the posterior "
                      "do not overlap", RuntimeWarning, stacklevel=3)
    if not converged:
        warnings.warn(f"bridge sampling's iterative scheme did not converge in {max_iter} "
                      "iterations", RuntimeWarning, stacklevel=3)
    diagnostics = {"n_posterior": n1, "n_proposal": n2, "ess_posterior": ess, "ess_f2": ess_f2,
                   "re2": re2, "n_iterations": n_iter, "converged": converged,
                   "label_switching": mode, "n_permutations": len(perms),
                   "log_k_factorial": log_k_fact, "proposal_dim": space.dim,
                   "proposal_draws_outside_support": int(np.sum(~np.isfinite(log_q[n1:])))}
    return EvidenceResult(log_ml + log_k_fact, math.sqrt(re2), "bridge", diagnostics)


def _ess(values):
    """ArviZ's effective sample size of the mean of (chains, draws, ...) values, per coordinate
    (method "mean": the variance of a mean is what both uses need)."""
    return np.asarray(az.ess(az.convert_to_dataset({"v": values}), method="mean")["v"].values)


def _iterate(l1, l2, n1_eff, tol, max_iter):
    """Meng & Wong's iterative scheme in logs: (log p(X), iterations, converged)."""
    n2 = len(l2)
    lstar = float(np.median(l1))
    log_s1 = math.log(n1_eff / (n1_eff + n2))
    log_s2 = math.log(n2 / (n1_eff + n2))
    a1, a2 = l1 - lstar, l2 - lstar
    log_r = math.log(0.5)
    for i in range(1, max_iter + 1):
        log_num = logsumexp(a2 - np.logaddexp(log_s1 + a2, log_s2 + log_r)) - math.log(n2)
        log_den = logsumexp(-np.logaddexp(log_s1 + a1, log_s2 + log_r)) - math.log(len(l1))
        new = log_num - log_den
        change = abs(1.0 - math.exp(log_r - new))  # |r_new - r| / r_new
        log_r = new
        if change < tol:
            return log_r + lstar, i, True
    return log_r + lstar, max_iter, False


def _relative_mse(l1_chains, l2, log_ml):
    """(RE^2, ESS of f2) of the bridge estimate (module docstring); l1_chains (chains, draws)."""
    n1, n2 = l1_chains.size, l2.size
    s1, s2 = n1 / (n1 + n2), n2 / (n1 + n2)
    # f1 = rho / (s1 rho + s2), f2 = 1 / (s1 rho + s2), rho = p / g = exp(l - log p(X)),
    # written with the logistic function so that no exp overflows
    f1 = expit(l2 - log_ml - math.log(s2 / s1)) / s1
    f2 = expit(-(l1_chains - log_ml + math.log(s1 / s2))) / s2
    ess_f2 = float(_ess(f2))
    re2 = f1.var(ddof=1) / (n2 * f1.mean() ** 2) + f2.var(ddof=1) / (ess_f2 * f2.mean() ** 2)
    return float(re2), ess_f2


METHODS = {"bridge": bridge_sampling}
