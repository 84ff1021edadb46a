"""Per-point evidence and inference gaps for any NumPyro model with local latents.

A model with local latents here is one whose sample sites (latent and observed) all sit in
one plate (default name ``"data"``) of size N, each data point n with its own latents z_n,
and whose global parameters are param sites (networks, mixture-prior weights, ...). Its guide
proposes the same latent sites in the same plate. Everything below works point by point:
with the plate's indices substituted (``handlers.substitute(data={plate: idx})``) the model
sees the points ``idx`` only, and the log densities of every site are summed within each
point, never scaled by N / B.

For one point x with proposal q(z | x) and importance weights w_j = p(x, z_j) / q(z_j | x),
z_j ~ q (j = 1..k):

    ELBO(q)       = E_q[log w]                  estimated by mean_j log w_j
    IWAE-k        = E[log (1/k) sum_j w_j]       <= log p(x), increasing in k (Burda et al.)
    rate          = E_q[log q(z | x) - log p(z)] = KL(q(z | x) || p(z)) (its MC estimate)
    distortion    = -E_q[log p(x | z)]          so that ELBO = -(distortion + rate)

and the inference gap of an amortized q (Cremer, Li & Duvenaud 2018), with q* the best
member of the same family for this point (``local_variational_fit``):

    log p(x) - ELBO(q_amortized) = [log p(x) - ELBO(q*)]   approximation gap
                                 + [ELBO(q*) - ELBO(q_amortized)]   amortization gap

where log p(x) is estimated by IWAE-k with large k and q* as the proposal (a lower bound:
the approximation gap so estimated is a lower bound on the true one, the amortization gap
does not involve log p(x)).

Standard errors (Monte-Carlo, i.e. for fixed data and fixed parameters):
- ELBO, rate, distortion of a point: sample standard deviation of the k terms / sqrt(k).
- IWAE-k of a point, ``repeats=1``: the delta method on the importance weights,
  Var[log w_bar] ~= Var[w] / (k w_bar^2) = (k * sum w^2 / (sum w)^2 - 1) / (k - 1) (computed
  in log space); it is reliable when the weights have a finite variance and their effective
  sample size is not tiny, and under-states the error when they are heavy-tailed.
  ``repeats=R >= 2``: R independent IWAE-k estimates per point; the value is their mean
  (still an IWAE-k bound) and its SE their standard deviation / sqrt(R).
- The mean over N points: ``se_mean = sqrt(sum_n se_n^2) / N`` (independent draws per point).
``sd`` is the spread over points (the data's variability, not Monte-Carlo error): the SE of
a test-set mean as an estimate of the population mean is ``sd / sqrt(N)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optax
from numpyro import handlers

from em_reference.config import one_blas_thread
from models._common import check_positive_float, check_positive_int
from models._model_info import prepare_args, split_args

MAX_ELEMENTS = 2 ** 22   # per-point site elements x points x particles held at once


class PointEstimate(NamedTuple):
    values: np.ndarray   # (N,) the estimate for each point
    se: np.ndarray       # (N,) its Monte-Carlo standard error
    mean: float          # mean over points
    se_mean: float       # Monte-Carlo standard error of ``mean``: sqrt(sum se^2) / N
    sd: float            # standard deviation of ``values`` over points (data variability)


class Evidence(NamedTuple):
    """From one set of k draws per point: ``iwae`` (IWAE-k), ``elbo``, ``rate`` (KL(q||p(z)))
    and ``distortion`` (-E_q log p(x | z)); ``elbo.values == -(rate + distortion).values``."""
    iwae: PointEstimate
    elbo: PointEstimate
    rate: PointEstimate
    distortion: PointEstimate
    num_particles: int


class LocalQ(NamedTuple):
    """Per-point factorised Gaussians q*(z_n): site -> (N, *site_shape) means and standard
    deviations; ``objective_trace`` (steps,) the mean per-point ELBO estimate at every step."""
    loc: dict
    scale: dict
    objective_trace: np.ndarray


class Gaps(NamedTuple):
    """The gap decomposition per point (Cremer et al. 2018); every field a PointEstimate in
    nats, inference_gap = approximation_gap + amortization_gap exactly (same estimates)."""
    log_px: PointEstimate             # IWAE-k with q* as proposal (<= log p(x))
    elbo_amortized: PointEstimate
    elbo_local: PointEstimate
    inference_gap: PointEstimate      # log_px - elbo_amortized
    approximation_gap: PointEstimate  # log_px - elbo_local
    amortization_gap: PointEstimate   # elbo_local - elbo_amortized
    local: LocalQ


def estimate(values, se) -> PointEstimate:
    values, se = np.asarray(values, float), np.asarray(se, float)
    n = len(values)
    return PointEstimate(values, se, float(values.mean()), float(np.sqrt(np.sum(se ** 2)) / n),
                         float(values.std(ddof=1)) if n > 1 else 0.0)


def difference(a: PointEstimate, b: PointEstimate) -> PointEstimate:
    """a - b for estimates from independent draws."""
    return estimate(a.values - b.values, np.sqrt(a.se ** 2 + b.se ** 2))


# ---------------------------------------------------------------------------------------------
# structure: the data plate and the latent sites


class Structure(NamedTuple):
    n: int                 # plate size (number of points)
    latent: tuple          # latent sample sites (model and guide)
    observed: tuple        # observed sample sites of the model
    point_elements: int    # site elements per point, all sites together (memory budget)


def _plate_frame(site, plate):
    for frame in site["cond_indep_stack"]:
        if frame.name == plate:
            return frame
    return None


def local_structure(model, guide, args, kwargs, plate="data") -> Structure:
    """Trace model and guide once abstractly and check they are a local-latent pair: every
    sample site inside ``plate``, the guide proposing exactly the model's latent sites.
    Raises ValueError naming the problem."""
    box = {}

    def run():
        g = handlers.trace(handlers.seed(guide, 0)).get_trace(*args, **kwargs)
        m = handlers.trace(handlers.replay(handlers.seed(model, 1), g)).get_trace(*args, **kwargs)
        box["g"], box["m"] = g, m

    jax.eval_shape(run)
    g, m = box["g"], box["m"]
    plates = {s["args"][0] for s in m.values() if s["type"] == "plate" and s["name"] == plate}
    if not plates:
        raise ValueError(f"the model has no plate named {plate!r} (the data plate: give its "
                         "name as plate=...)")
    n = int(plates.pop())
    elements = 0
    for where, tr in (("model", m), ("guide", g)):
        for name, site in tr.items():
            if site["type"] != "sample":
                continue
            if _plate_frame(site, plate) is None:
                raise ValueError(f"{where} sample site {name!r} is outside the plate {plate!r}: "
                                 "per-point evidence needs every sample site local to a "
                                 "point (make global quantities param sites)")
            elements += int(np.prod(jnp.shape(site["value"]))) // n
    latent = tuple(k for k, s in m.items() if s["type"] == "sample" and not s["is_observed"])
    observed = tuple(k for k, s in m.items() if s["type"] == "sample" and s["is_observed"])
    proposed = tuple(k for k, s in g.items() if s["type"] == "sample" and not s["is_observed"])
    if set(latent) != set(proposed):
        raise ValueError(f"the guide proposes {sorted(proposed)} but the model's latent sites "
                         f"are {sorted(latent)}")
    if not latent:
        raise ValueError("the model has no latent sample sites")
    return Structure(n, latent, observed, max(elements, 1))


def per_point(site, plate):
    """A site's log density summed within each point of the plate: (B,)."""
    lp = site["fn"].log_prob(site["value"])
    frame = _plate_frame(site, plate)
    axis = jnp.ndim(lp) + frame.dim
    lp = jnp.moveaxis(jnp.broadcast_to(lp, jnp.shape(lp)), axis, 0)
    return lp.reshape(lp.shape[0], -1).sum(1)


# ---------------------------------------------------------------------------------------------
# proposals and the model's terms at one draw


def amortized_draw(guide, params, rebuild, plate, structure):
    """draw(key, idx, dyn) -> (latents site -> (B, ...), log q (B,)) from the guide."""

    def draw(key, idx, dyn):
        args, kwargs = rebuild(dyn)
        g = handlers.substitute(handlers.seed(guide, key), data={**params, plate: idx})
        tr = handlers.trace(g).get_trace(*args, **kwargs)
        log_q = sum(per_point(tr[name], plate) for name in structure.latent)
        return {name: tr[name]["value"] for name in structure.latent}, log_q

    return draw


def gaussian_draw(loc, scale):
    """draw(key, idx, dyn) from per-point factorised Gaussians (site -> (N, ...) arrays)."""

    def draw(key, idx, dyn):
        keys = jax.random.split(key, len(loc))
        latents, log_q = {}, 0.0
        for k, name in zip(keys, sorted(loc), strict=True):
            m, s = loc[name][idx], scale[name][idx]
            z = m + s * jax.random.normal(k, m.shape, m.dtype)
            latents[name] = z
            log_q = log_q + dist.Normal(m, s).log_prob(z).reshape(len(idx), -1).sum(1)
        return latents, log_q

    return draw


def model_terms(model, params, rebuild, plate, structure):
    """terms(key, idx, latents, dyn) -> (log p(x | z) (B,), log p(z) (B,))."""

    def terms(key, idx, latents, dyn):
        args, kwargs = rebuild(dyn)
        m = handlers.substitute(handlers.seed(model, key),
                                data={**params, plate: idx, **latents})
        tr = handlers.trace(m).get_trace(*args, **kwargs)
        log_lik = sum(per_point(tr[name], plate) for name in structure.observed)
        log_prior = sum(per_point(tr[name], plate) for name in structure.latent)
        return log_lik, log_prior

    return terms


# ---------------------------------------------------------------------------------------------
# the streaming estimator: points in chunks, particles in blocks


def _merge_moments(a, b):
    """Chan et al.'s pairwise update of (count, mean, M2) along the particle axis."""
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    delta = mb - ma
    w = jnp.where(n > 0, nb / jnp.maximum(n, 1), 0.0)
    return n, ma + delta * w, sa + sb + delta ** 2 * na * w


def chunk_plan(n, k, point_elements, chunk_size=None):
    """(chunk, block): points per chunk and particles per block, within MAX_ELEMENTS."""
    chunk = min(n, chunk_size or 256)
    block = int(max(1, min(k, MAX_ELEMENTS // (chunk * point_elements))))
    return chunk, block


def point_statistics(draw, terms, n, k, chunk, block):
    """stats(key, dyn) -> dict of (N,) arrays over k draws per point: ``lse`` and ``lse2``
    (log-sum-exp of log w and of 2 log w) and, for each of ``log_w``, ``log_lik``
    (log p(x | z)) and ``kl`` (log q - log p(z)), the pair (mean, sum of squared deviations).
    Pure: jit it."""
    n_chunks, n_blocks = -(-n // chunk), -(-k // block)
    mask = (jnp.arange(n_blocks * block) < k).reshape(n_blocks, block)
    names = ("log_w", "log_lik", "kl")

    def one_chunk(key, idx, dyn):
        def one(key):
            kd, km = jax.random.split(key)
            latents, log_q = draw(kd, idx, dyn)
            log_lik, log_prior = terms(km, idx, latents, dyn)
            return log_lik, log_q - log_prior

        def body(acc, inp):
            bkey, m = inp
            log_lik, kl = jax.vmap(one)(jax.random.split(bkey, block))     # (block, chunk)
            values = {"log_w": log_lik - kl, "log_lik": log_lik, "kl": kl}
            mm = m[:, None]
            cnt = jnp.sum(m).astype(log_lik.dtype)
            out = {}
            for name in names:
                v = values[name]
                bmean = jnp.sum(jnp.where(mm, v, 0.0), 0) / jnp.maximum(cnt, 1)
                bm2 = jnp.sum(jnp.where(mm, (v - bmean) ** 2, 0.0), 0)
                out[name] = _merge_moments(acc[name], (cnt, bmean, bm2))
            lw = jnp.where(mm, values["log_w"], -jnp.inf)
            out["lse"] = jnp.logaddexp(acc["lse"], jax.nn.logsumexp(lw, 0))
            out["lse2"] = jnp.logaddexp(acc["lse2"], jax.nn.logsumexp(2 * lw, 0))
            return out, None

        dtype = jnp.result_type(float)
        zero = jnp.zeros(chunk, dtype)
        init = {name: (jnp.zeros((), dtype), zero, zero) for name in names}
        init["lse"] = init["lse2"] = jnp.full(chunk, -jnp.inf, dtype)
        acc, _ = jax.lax.scan(body, init, (jax.random.split(key, n_blocks), mask))
        out = {"lse": acc["lse"], "lse2": acc["lse2"]}
        out.update({name: (acc[name][1], acc[name][2]) for name in names})
        return out

    def stats(key, dyn):
        # the last chunk wraps around to the first points (recomputed, then dropped)
        idx = (jnp.arange(n_chunks * chunk) % n).reshape(n_chunks, chunk)
        keys = jax.random.split(key, n_chunks)
        out = jax.lax.map(lambda a: one_chunk(a[0], a[1], dyn), (keys, idx))
        return jax.tree.map(lambda v: v.reshape(-1)[:n], out)

    return stats


def summarise(stats, k) -> Evidence:
    """Evidence (per point, with MC standard errors) from ``point_statistics``' output."""
    s = jax.tree.map(np.asarray, stats)
    iwae = s["lse"] - np.log(k)
    # delta method on the weights: (k sum w^2 / (sum w)^2 - 1) / (k - 1), in log space
    iwae_se = np.sqrt(np.maximum((k * np.exp(s["lse2"] - 2 * s["lse"]) - 1) / (k - 1), 0.0))

    def mean_se(name, sign=1.0):
        mean, m2 = s[name]
        return estimate(sign * mean, np.sqrt(m2 / (k - 1) / k))

    return Evidence(estimate(iwae, iwae_se), mean_se("log_w"), mean_se("kl"),
                    mean_se("log_lik", -1.0), k)


# ---------------------------------------------------------------------------------------------
# public functions


def _setup(model, guide, args, kwargs, model_kwargs, plate):
    kwargs = {**kwargs, **(model_kwargs or {})}
    args, kwargs = prepare_args(model, args, kwargs)
    structure = local_structure(model, guide, args, kwargs, plate)
    return structure, split_args(args, kwargs)


def _as_params(params):
    return jax.tree.map(jnp.asarray, dict(params))


@one_blas_thread()
def evidence_per_point(model, guide, params, *args, num_particles=1000, repeats=1,
                       plate="data", seed=0, chunk_size=None, proposal=None,
                       model_kwargs=None, **kwargs) -> Evidence:
    """IWAE-k, ELBO, rate and distortion of every point from k = ``num_particles`` draws of
    the guide (or of ``proposal``, a LocalQ), at the param values ``params`` (site -> value,
    e.g. ``FitResult.params``: every param site of model and guide).

    repeats : R independent sets of k draws; R >= 2 gives the IWAE-k SE from their spread
        (values = the mean of the R estimates), R = 1 the delta-method SE (module docstring).
    Returns Evidence; each field's ``values`` (N,), ``se`` (N,), ``mean``, ``se_mean``, ``sd``.
    """
    k = check_positive_int(num_particles, "num_particles", minimum=2)
    repeats = check_positive_int(repeats, "repeats")
    structure, margs = _setup(model, guide, args, kwargs, model_kwargs, plate)
    params = _as_params(params)
    if proposal is None:
        draw = amortized_draw(guide, params, margs.rebuild, plate, structure)
    else:
        if set(proposal.loc) != set(structure.latent):
            raise ValueError(f"proposal covers {sorted(proposal.loc)}, the latent sites are "
                             f"{sorted(structure.latent)}")
        draw = gaussian_draw(_as_params(proposal.loc), _as_params(proposal.scale))
    terms = model_terms(model, params, margs.rebuild, plate, structure)
    chunk, block = chunk_plan(structure.n, k, structure.point_elements, chunk_size)
    stats = jax.jit(point_statistics(draw, terms, structure.n, k, chunk, block))
    runs = [summarise(stats(jax.random.PRNGKey(seed + 7919 * r), margs.dyn), k)
            for r in range(repeats)]
    if repeats == 1:
        return runs[0]
    combined = []
    for field in range(4):
        vals = np.stack([r[field].values for r in runs])
        spread = vals.std(0, ddof=1) / np.sqrt(repeats)
        # the IWAE's SE from the repeats; the means' SEs combine the runs' own
        se = spread if field == 0 else np.sqrt(np.mean([r[field].se ** 2 for r in runs], 0)
                                                / repeats)
        combined.append(estimate(vals.mean(0), se))
    return Evidence(*combined, k)


def iwae_per_point(model, guide, params, *args, num_particles=1000, **kwargs) -> PointEstimate:
    """IWAE-k lower bound on log p(x_n) per point (see ``evidence_per_point``)."""
    return evidence_per_point(model, guide, params, *args, num_particles=num_particles,
                              **kwargs).iwae


def elbo_per_point(model, guide, params, *args, num_particles=100, **kwargs) -> PointEstimate:
    """ELBO of the (amortized) guide per point (see ``evidence_per_point``)."""
    return evidence_per_point(model, guide, params, *args, num_particles=num_particles,
                              **kwargs).elbo


def _gaussian_moments(site):
    """(loc, scale) of a guide site that is Normal or Independent(Normal), broadcast to the
    site's value shape; ValueError for any other family."""
    fn = site["fn"]
    while isinstance(fn, dist.Independent):
        fn = fn.base_dist
    if not isinstance(fn, dist.Normal):
        raise ValueError(f"guide site {site['name']!r} is {type(site['fn']).__name__}: the "
                         "locally optimised q* is a factorised Gaussian, for Normal guide sites")
    shape = jnp.shape(site["value"])
    return jnp.broadcast_to(fn.loc, shape), jnp.broadcast_to(fn.scale, shape)


@one_blas_thread()
def local_variational_fit(model, guide, params, *args, steps=500, learning_rate=0.01,
                          num_particles=10, plate="data", seed=0, chunk_size=None,
                          model_kwargs=None, **kwargs) -> LocalQ:
    """q*(z_n): for every point its own factorised Gaussian (same family as a Normal guide),
    initialised at the guide's output and fitted by Adam on the point's ELBO (``steps``
    steps, the step size decaying from ``learning_rate`` to 1% of it on a cosine,
    ``num_particles`` reparameterised draws per step) with the model's parameters
    (the decoder) frozen at ``params``. Points are independent given the decoder, so a chunk
    of points is optimised as one sum whose gradient separates point by point."""
    steps = check_positive_int(steps, "steps")
    k = check_positive_int(num_particles, "num_particles")
    learning_rate = check_positive_float(learning_rate, "learning_rate")
    structure, margs = _setup(model, guide, args, kwargs, model_kwargs, plate)
    params = _as_params(params)
    terms = model_terms(model, params, margs.rebuild, plate, structure)
    chunk = min(structure.n, chunk_size or 256)
    n_chunks = -(-structure.n // chunk)
    # a decaying step (cosine to 1% of learning_rate): constant-step Adam on noisy gradients
    # ends jittering around q*, not at it
    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.01))

    def init_moments(idx, dyn):
        args, kwargs = margs.rebuild(dyn)
        g = handlers.substitute(handlers.seed(guide, 0), data={**params, plate: idx})
        tr = handlers.trace(g).get_trace(*args, **kwargs)
        loc, scale = {}, {}
        for name in structure.latent:
            loc[name], scale[name] = _gaussian_moments(tr[name])
        return loc, scale

    def fit_chunk(key, idx, dyn):
        loc, scale = init_moments(idx, dyn)
        theta = (loc, jax.tree.map(jnp.log, scale))
        local_idx = jnp.arange(len(idx))

        def objective(theta, key):
            m, log_s = theta
            draw = gaussian_draw(m, jax.tree.map(jnp.exp, log_s))

            def one(key):
                kd, km = jax.random.split(key)
                latents, log_q = draw(kd, local_idx, dyn)
                log_lik, log_prior = terms(km, idx, latents, dyn)
                return log_lik + log_prior - log_q

            return -jnp.mean(jax.vmap(one)(jax.random.split(key, k)), 0).sum()

        def step(carry, key):
            theta, state = carry
            loss, grad = jax.value_and_grad(objective)(theta, key)
            updates, state = opt.update(grad, state, theta)
            return (optax.apply_updates(theta, updates), state), -loss / len(idx)

        (theta, _), trace = jax.lax.scan(step, (theta, opt.init(theta)),
                                         jax.random.split(key, steps))
        return theta[0], jax.tree.map(jnp.exp, theta[1]), trace

    def run(key, dyn):
        idx = (jnp.arange(n_chunks * chunk) % structure.n).reshape(n_chunks, chunk)
        loc, scale, trace = jax.lax.map(lambda a: fit_chunk(a[0], a[1], dyn),
                                        (jax.random.split(key, n_chunks), idx))
        flat = lambda v: v.reshape((-1,) + v.shape[2:])[: structure.n]  # noqa: E731
        return jax.tree.map(flat, loc), jax.tree.map(flat, scale), trace.mean(0)

    loc, scale, trace = jax.jit(run)(jax.random.PRNGKey(seed), margs.dyn)
    loc, scale = jax.tree.map(np.asarray, loc), jax.tree.map(np.asarray, scale)
    bad = [name for name in loc if not (np.isfinite(loc[name]).all()
                                        and np.isfinite(scale[name]).all())]
    if bad:
        raise FloatingPointError(f"local_variational_fit: non-finite q* at sites {bad}; lower "
                                 "learning_rate")
    return LocalQ(loc, scale, np.asarray(trace))


def inference_gaps(model, guide, params, *args, num_particles=5000, elbo_particles=1000,
                   local_steps=500, local_learning_rate=0.01, local_particles=10,
                   plate="data", seed=0, chunk_size=None, model_kwargs=None,
                   **kwargs) -> Gaps:
    """The decomposition inference gap = approximation gap + amortization gap per point:
    q* from ``local_variational_fit``; ELBO(q_amortized) and ELBO(q*) from
    ``elbo_particles`` draws each; log p(x) by IWAE-``num_particles`` with q* as proposal
    (all independent draws, so the SEs of the differences add in quadrature)."""
    common = dict(plate=plate, chunk_size=chunk_size, model_kwargs=model_kwargs, **kwargs)
    local = local_variational_fit(model, guide, params, *args, steps=local_steps,
                                  learning_rate=local_learning_rate,
                                  num_particles=local_particles, seed=seed, **common)
    amortized = evidence_per_point(model, guide, params, *args, num_particles=elbo_particles,
                                   seed=seed + 1, **common)
    optimised = evidence_per_point(model, guide, params, *args, num_particles=elbo_particles,
                                   seed=seed + 2, proposal=local, **common)
    log_px = evidence_per_point(model, guide, params, *args, num_particles=num_particles,
                                seed=seed + 3, proposal=local, **common).iwae
    return Gaps(log_px, amortized.elbo, optimised.elbo, difference(log_px, amortized.elbo),
                difference(log_px, optimised.elbo), difference(optimised.elbo, amortized.elbo),
                local)


@one_blas_thread()
def active_units(guide, params, *args, threshold=1e-2, plate="data", chunk_size=None,
                 model_kwargs=None, **kwargs):
    """Active latent dimensions (Burda et al. 2016): A_u = Cov_x(E_q[z_u | x]) > threshold,
    the covariance over the points ``args`` of the guide's mean. Returns (number active,
    variances (U,)) with the latent sites' dimensions flattened in site-name order."""
    threshold = check_positive_float(threshold, "threshold")
    kwargs = {**kwargs, **(model_kwargs or {})}
    margs = split_args(args, kwargs)
    params = _as_params(params)
    box = {}

    def probe():
        box["tr"] = handlers.trace(handlers.seed(guide, 0)).get_trace(*args, **kwargs)

    jax.eval_shape(probe)
    sites = sorted(k for k, s in box["tr"].items() if s["type"] == "sample"
                   and not s["is_observed"])
    n = [s for s in box["tr"].values() if s["type"] == "plate" and s["name"] == plate]
    if not n:
        raise ValueError(f"the guide has no plate named {plate!r}")
    n = int(n[0]["args"][0])
    chunk = min(n, chunk_size or 1024)
    n_chunks = -(-n // chunk)

    def means(idx, dyn):
        a, kw = margs.rebuild(dyn)
        g = handlers.substitute(handlers.seed(guide, 0), data={**params, plate: idx})
        tr = handlers.trace(g).get_trace(*a, **kw)
        return jnp.concatenate([tr[s]["fn"].mean.reshape(len(idx), -1) for s in sites], 1)

    def run(dyn):
        idx = (jnp.arange(n_chunks * chunk) % n).reshape(n_chunks, chunk)
        out = jax.lax.map(lambda i: means(i, dyn), idx)
        return out.reshape(-1, out.shape[-1])[:n]

    mu = np.asarray(jax.jit(run)(margs.dyn))
    variances = mu.var(0, ddof=1)
    return int(np.sum(variances > threshold)), variances
