"""NUTS for any NumPyro model (numpyro's NUTS kernel driven by a jitted scan), several chains,
label switching of mixture components undone before the diagnostics."""

from __future__ import annotations

import math
import time

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import biject_to
from numpyro.infer import NUTS
from numpyro.infer.initialization import init_to_uniform, init_to_value
from tqdm.auto import tqdm

from em_reference.config import one_blas_thread
from models._common import (as_init_list, check_positive_float, check_positive_int,
                            posterior_inference_data, require_finite)
from models._checks import check_init_strategy, check_seed, merge_model_kwargs
from models.diagnostics import TARGET_ESS, TARGET_R_HAT, mixing_diagnostics, quiet_arviz
from models._model_info import (compile_timed, inspect_model, prepare_args, split_args,
                                stack_trees)
from models.relabel import component_axes, relabel_to_reference, sort_by_mean
from models.result import FitError, FitResult

CHAIN_METHODS = ("vectorized", "sequential")


def _chunk_size(lengths, cap):
    """Largest divisor of gcd(lengths) (warm-up, first block, later blocks) not above cap: one
    compiled chunk then serves warm-up and every block of draws."""
    g = math.gcd(*lengths)
    return max(d for d in range(1, min(g, cap) + 1) if g % d == 0)


@one_blas_thread()  # XLA's LAPACK calls: see em_reference.config
def fit_nuts(model, *args, seed=0, num_warmup=500, num_samples=500, num_chains=2,
             max_samples=None, block_size=None, max_seconds=None, target_r_hat=TARGET_R_HAT,
             target_ess=TARGET_ESS, chain_method="sequential", init=None,
             init_strategy=init_to_uniform, target_accept_prob=0.8, max_tree_depth=10,
             dense_mass=False, relabel="auto", ordered=False, progress_bar=False,
             model_kwargs=None, **kwargs):
    """Sample the posterior with NUTS until the chains mix (or a cap is hit).

    num_warmup : warm-up (adaptation) draws per chain, discarded.
    num_samples, block_size, max_samples, max_seconds : the chains first draw num_samples per
        chain; while they have not mixed they continue, the same chains with the step size and
        mass matrix adapted in warm-up, in blocks of ``block_size`` draws (default num_samples)
        up to ``max_samples`` draws per chain in all (default 10 * num_samples, rounded down to
        whole blocks; max_samples=num_samples runs one fixed-length block). ``max_seconds``
        (default None: no limit) stops them from starting a new block once the run (warm-up
        and draws, compilation excluded) has taken that long; a time cap makes the number of
        draws depend on the machine.
        Continuing gives exactly the draws of one longer run (the chains' keys live in their
        states), so the result depends on the caps only through where it stops.
    target_r_hat, target_ess : mixed = rank-normalised split r_hat <= target_r_hat and bulk and
        tail ESS >= target_ess (totals over chains) for every scalar of every latent site
        (Vehtari et al. 2021, by ArviZ; see models.diagnostics), after relabelling, and no
        divergent transition after warm-up. Any divergence fails the status (a divergence means
        the sampler missed part of the posterior, so its summaries are suspect) but does not
        stop the run: more draws cannot remove it, and the r_hat / ESS targets still decide
        when to stop. status "ok" when mixed, else "failed_to_mix" with the reasons in
        diagnostics["mixing_failures"] and the cap in diagnostics["cap_hit"].
    num_chains : chains, run "vectorized" (vmap) or "sequential" (lax.map) inside one jitted
        function. With one chain, r_hat compares its two halves.
    init : None (``init_strategy``, default init_to_uniform, a different key per chain), a
        dict of constrained values (every chain starts there) or a list of num_chains such
        dicts (each giving every latent site).
    target_accept_prob : in (0, 1); max_tree_depth, dense_mass: numpyro's NUTS options.
    relabel : "auto" (mixtures: the latent sites in a plate named "components" plus the
        simplex weights are permuted, per draw, to best match a reference: the draw of highest
        density, then the mean of the relabelled draws), None (no relabelling) or a dict
        site -> component axis in the site's own shape.
    ordered : instead of matching, sort the components of every draw by a 1-D component site:
        True sorts by ``means`` (or ``rates`` in a model without means), a string names the
        site.
    Returns FitResult with method "nuts"; samples are (num_chains * draws, ...) chain after
    chain, ``inference_data`` has (chain, draw) dims; diagnostics hold r_hat_max,
    ess_bulk_min, ess_tail_min (over latent sites, after relabelling), divergences, draws (per
    chain), n_blocks, seconds (warm-up and draws, compilation excluded), cap_hit (None,
    "max_samples" or "max_seconds"), mixing_failures, target_r_hat, target_ess and an ArviZ
    summary.
    """
    t_start = time.perf_counter()
    kwargs = merge_model_kwargs(kwargs, model_kwargs)
    check_init_strategy(init_strategy)
    seed = check_seed(seed)
    num_warmup = check_positive_int(num_warmup, "num_warmup", minimum=0)
    num_samples = check_positive_int(num_samples, "num_samples")
    block_size = num_samples if block_size is None else check_positive_int(block_size,
                                                                           "block_size")
    max_samples = (10 * num_samples if max_samples is None
                   else check_positive_int(max_samples, "max_samples"))
    if max_samples < num_samples:
        raise ValueError(f"max_samples={max_samples} is below num_samples={num_samples}")
    # whole blocks only: the cap is rounded down to num_samples + a multiple of block_size
    max_samples = num_samples + (max_samples - num_samples) // block_size * block_size
    if max_seconds is not None:
        max_seconds = check_positive_float(max_seconds, "max_seconds")
    num_chains = check_positive_int(num_chains, "num_chains")
    check_positive_int(max_tree_depth, "max_tree_depth")
    if not isinstance(dense_mass, bool | list | tuple):
        raise ValueError(f"dense_mass must be a bool or a list of site-name tuples (numpyro's "
                         f"structured mass matrix), got {dense_mass!r}")
    if not (isinstance(target_accept_prob, int | float | np.floating)
            and 0.0 < target_accept_prob < 1.0):
        raise ValueError(f"target_accept_prob must be a number in (0, 1), got "
                         f"{target_accept_prob!r}")
    if not (isinstance(target_r_hat, int | float | np.floating) and target_r_hat > 1.0):
        raise ValueError(f"target_r_hat must be a number > 1, got {target_r_hat!r}")
    target_ess = check_positive_float(target_ess, "target_ess")
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
    args, kwargs = prepare_args(model, args, kwargs)
    info = inspect_model(model, args, kwargs)
    margs = split_args(args, kwargs)
    if info.params:
        raise ValueError(f"NUTS needs every parameter as a sample site with a prior; the model "
                         f"has param sites {sorted(info.params)}")
    if not info.latent:
        raise ValueError("the model has no latent sample sites: nothing to sample")
    axes = _relabel_axes(relabel, info, ordered)
    order_site = _ordered_site(ordered, axes, info)
    start, inits = _chain_inits(init, info, num_chains)

    def make_kernel():
        strategy = init_to_value(values=start) if start else init_strategy
        return NUTS(model, init_strategy=strategy, target_accept_prob=target_accept_prob,
                    max_tree_depth=max_tree_depth, dense_mass=dense_mass)

    # numpyro's eager initialisation (op by op) costs more than compiling it; lax.map over the
    # chains (not numpyro's vmapped init) keeps the kernel unbatched and compiles faster
    kernel = make_kernel()
    keys = jax.random.split(jax.random.PRNGKey(seed), num_chains)

    def init_chains(keys, inits, dyn):
        args, kwargs = margs.rebuild(dyn)

        def one(arg):
            key, values = arg
            return kernel.init(key, num_warmup, values, args, kwargs)
        return jax.lax.map(one, (keys, inits))

    init_c, compile_time = compile_timed(init_chains, keys, inits, margs.dyn)
    states = init_c(keys, inits, margs.dyn)
    chunk = _chunk_size((num_warmup, num_samples, block_size), 100 if progress_bar else 10**9)

    def advance(states, dyn):
        args, kwargs = margs.rebuild(dyn)
        constrain = kernel.postprocess_fn(args, kwargs)
        if chain_method == "vectorized":
            sample = jax.vmap(kernel.sample, in_axes=(0, None, None))
        else:
            sample = kernel.sample

        def run(state):
            def step(s, _):
                s = sample(s, args, kwargs)
                return s, (s.z, s.potential_energy, s.diverging, s.num_steps, s.accept_prob)
            return jax.lax.scan(step, state, None, length=chunk)

        states, (z, pe, div, n, acc) = (run(states) if chain_method == "vectorized"
                                        else jax.lax.map(run, states))
        if chain_method == "vectorized":  # scan stacked draws first: make chains first
            z, pe, div, n, acc = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1),
                                              (z, pe, div, n, acc))
        draws = jax.vmap(jax.vmap(constrain))(z)
        return states, (draws, pe, div, n, acc)

    advance_c, dt = compile_timed(advance, states, margs.dyn)
    compile_time += dt
    t_run = time.perf_counter()
    kept, n_draws, n_blocks, cap_hit = [], 0, 0, None
    target = num_samples
    with tqdm(total=num_warmup + num_samples, desc="nuts", disable=not progress_bar) as bar:
        for _ in range(num_warmup // chunk):
            states, _out = advance_c(states, margs.dyn)
            bar.update(chunk)
        while True:
            while n_draws < target:
                states, out = advance_c(states, margs.dyn)
                kept.append(jax.tree.map(np.asarray, out))
                n_draws += chunk
                bar.update(chunk)
            n_blocks += 1
            draws, pe, div, n_leap, acc = jax.tree.map(
                lambda *xs: np.concatenate(xs, axis=1), *kept)
            kept = [(draws, pe, div, n_leap, acc)]
            require_finite(draws, "draws", "nuts")
            if not np.all(np.isfinite(pe)):
                raise FitError("nuts: non-finite potential energy among the draws")
            samples, perm = _relabelled(draws, pe, axes, order_site)
            mixing = mixing_diagnostics(
                {k: v.reshape((num_chains, n_draws) + v.shape[1:]) for k, v in samples.items()},
                list(info.latent), int(div.sum()), target_r_hat, target_ess)
            bar.set_postfix(r_hat=f"{mixing['r_hat_max']:.3f}",
                            ess=f"{min(mixing['ess_bulk_min'], mixing['ess_tail_min']):.0f}")
            # divergences fail the status but do not decide when to stop (see the docstring)
            if not [f for f in mixing["failures"] if "divergent" not in f]:
                break
            if n_draws >= max_samples:
                cap_hit = "max_samples"
                break
            if max_seconds is not None and time.perf_counter() - t_run >= max_seconds:
                cap_hit = "max_seconds"
                break
            target = min(n_draws + block_size, max_samples)
            bar.total += target - n_draws
    run_seconds = time.perf_counter() - t_run

    stats = {"diverging": div, "lp": -pe, "n_steps": n_leap, "acceptance_rate": acc,
             "step_size": np.broadcast_to(np.asarray(states.adapt_state.step_size)[:, None],
                                          div.shape)}
    idata = posterior_inference_data(samples, num_chains, sample_stats=stats)
    with quiet_arviz():
        summary = az.summary(idata, var_names=list(info.latent), kind="diagnostics",
                             round_to="none")
    divergences = int(div.sum())
    status = "ok" if mixing["mixed"] else "failed_to_mix"
    message = (f"nuts: {num_chains} chains x {n_draws} draws ({chain_method}, {n_blocks} "
               f"blocks), {divergences} divergences, max r_hat {mixing['r_hat_max']:.4f}, "
               f"min bulk / tail ESS {mixing['ess_bulk_min']:.0f} / "
               f"{mixing['ess_tail_min']:.0f}"
               + ("" if perm is None else
                  f", {np.mean(np.any(perm != np.arange(perm.shape[1]), 1)):.1%}"
                  " of draws relabelled")
               + ("; mixed" if mixing["mixed"] else
                  f"; FAILED TO MIX ({'; '.join(mixing['failures'])}"
                  + (f"; stopped at {cap_hit}" if cap_hit else "") + ")"))
    return FitResult(
        method="nuts", params={k: v.mean(0) for k, v in samples.items()}, samples=samples,
        objective_name=None, objective_trace=np.zeros(0), elbo=None, elbo_se=None,
        inference_data=idata, wall_time=time.perf_counter() - t_start,
        compile_time=compile_time, converged=status == "ok", n_steps=n_draws, status=status,
        diagnostics={"n_nonfinite": 0, "divergences": divergences,
                     "r_hat_max": mixing["r_hat_max"], "ess_bulk_min": mixing["ess_bulk_min"],
                     "ess_tail_min": mixing["ess_tail_min"], "draws": n_draws,
                     "n_blocks": n_blocks, "seconds": run_seconds, "cap_hit": cap_hit,
                     "mixing_failures": mixing["failures"], "target_r_hat": float(target_r_hat),
                     "target_ess": target_ess, "message": message, "summary": summary,
                     "relabel_axes": axes, "permutations": perm,
                     "mean_tree_steps": float(n_leap.mean())})


def _relabelled(draws, pe, axes, order_site):
    """draws: site -> (chains, n, ...) -> (site -> (chains * n, ...) relabelled, perm)."""
    samples = {k: v.reshape((-1,) + v.shape[2:]) for k, v in draws.items()}
    if not axes:
        return samples, None
    if order_site:
        return sort_by_mean(samples, axes, order_site)
    return relabel_to_reference(samples, axes, reference_draw=int(np.argmin(pe.ravel())))


def _relabel_axes(relabel, info, ordered):
    if relabel == "auto":
        axes = component_axes(info)
    elif relabel is None or relabel is False:
        axes = {}
    elif isinstance(relabel, dict):
        unknown = sorted(set(relabel) - set(info.latent))
        if unknown:
            raise ValueError(f"relabel names {unknown}, which are not latent sites")
        axes = dict(relabel)
    else:
        raise ValueError(f"relabel must be 'auto', None or a dict, got {relabel!r}")
    if ordered and not axes:
        raise ValueError("ordered=True needs component sites (a 'components' plate or relabel)")
    return axes


def _ordered_site(ordered, axes, info):
    """The component site to sort by (checked to hold one number per component), or None."""
    if not ordered:
        return None
    site = ordered if isinstance(ordered, str) else (
        "means" if "means" in axes or "rates" not in axes else "rates")
    if site not in axes:
        raise ValueError(f"ordered needs a component site {site!r}; the model's component "
                         f"sites are {sorted(axes)}")
    shape = info.shapes[site]
    if len(shape) > 2 or (len(shape) == 2 and shape[1 - axes[site]] != 1):
        raise ValueError(f"ordered=True needs 1-D {site} (one value per component), the site "
                         f"has shape {shape}")
    return site


def _chain_inits(init, info, num_chains):
    """-> (values for init_to_value or None, stacked unconstrained values (num_chains, ...)
    per latent site or None). Values are checked against the sites' shapes and supports."""
    if init is None:
        return None, None
    if isinstance(init, dict):
        return as_init_list(init, info, 1, what="chain")[0][0], None
    checked, _ = as_init_list(init, info, num_chains, what="chain")
    if len(checked) != num_chains or any(set(c) != set(info.latent) for c in checked):
        raise ValueError(f"init must be None, a dict, or a list of {num_chains} dicts each "
                         f"giving every latent site {sorted(info.latent)}")
    return None, stack_trees([{k: biject_to(info.latent[k]["fn"].support).inv(v)
                               for k, v in c.items()} for c in checked])
