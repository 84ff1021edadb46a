"""Minibatch SVI for models with local latents (VAEs, amortized models): epochs of minibatches,
each epoch one compiled program (``lax.scan`` over its minibatches, compiled once), held-out
early stopping, the ELBO or the IWAE bound, restarts.

Minibatches go through the model's data plate: each step substitutes the plate's indices
(``handlers.substitute(data={plate: idx})``), so a model that takes its data with
``numpyro.subsample`` (or indexes them with the plate's indices) sees the batch, and NumPyro
scales the batch's log densities by N / B. An epoch is a fresh random permutation of the
training points cut into floor(N / B) batches of B (the remainder, different every epoch, is
left out of that epoch).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro import handlers
from numpyro.infer import SVI, RenyiELBO, Trace_ELBO, TraceMeanField_ELBO
from tqdm.auto import tqdm

from em_reference.config import one_blas_thread
from models._common import (check_positive_float, check_positive_int, require_finite,
                            to_numpy)
from models._model_info import compile_timed, prepare_args, split_args
from models.local_evidence import (amortized_draw, chunk_plan, local_structure, model_terms,
                                   point_statistics, summarise)
from models.result import FitError, FitResult

# loss name -> (ELBO class factory of num_particles, objective name)
LOSSES = {
    "elbo": (lambda k: Trace_ELBO(num_particles=k), "elbo_vi"),
    # the KL term in closed form where NumPyro knows it (Normal guide, Normal prior)
    "elbo_analytic_kl": (lambda k: TraceMeanField_ELBO(num_particles=k), "elbo_vi"),
    # IWAE (Burda et al. 2016): Renyi's bound at alpha = 0, k = num_particles
    "iwae": (lambda k: RenyiELBO(alpha=0.0, num_particles=k), "iwae_vi"),
}


def _on_batch(fn, plate):
    """``fn`` with its data plate's indices taken from the keyword ``_batch``."""

    def run(*args, _batch, **kwargs):
        with handlers.substitute(data={plate: _batch}):
            return fn(*args, **kwargs)

    return run


def _split_rows(dyn, n, rows):
    """The arrays with n rows (the per-point data) restricted to ``rows``; others unchanged."""
    return [a[rows] if np.shape(a)[:1] == (n,) else a for a in dyn]


@one_blas_thread()
def fit_vi_minibatch(model, *args, guide, loss="elbo", num_particles=1, batch_size=128,
                     max_epochs=200, learning_rate=1e-3, optimizer=None, validation=0.1,
                     validation_args=None, patience=10, min_delta=0.0, eval_particles=None,
                     final_particles=10, n_restarts=1, max_seconds=None, plate="data",
                     seed=0, progress_bar=False, model_kwargs=None, **kwargs):
    """Fit a model with local latents and its amortized guide by minibatch SVI.

    model, *args, **kwargs : a NumPyro model whose sample sites all sit in the plate
        ``plate`` (see models.local_evidence) and its arguments; ``guide`` takes the same.
    loss : "elbo" (Trace_ELBO), "elbo_analytic_kl" (TraceMeanField_ELBO) or "iwae"
        (RenyiELBO(alpha=0): the IWAE bound with k = num_particles).
    batch_size, max_epochs, learning_rate / optimizer : Adam(learning_rate) unless an optax
        GradientTransformation is given.
    validation : fraction of the points held out (a fixed random split from ``seed``; every
        array argument with N rows is split) for early stopping, or None; or give the
        held-out data as ``validation_args`` (the model's positional arguments for them;
        then nothing is split off).
    patience, min_delta : stop when the held-out objective per point has not improved by more
        than min_delta for ``patience`` epochs; the parameters of the best epoch are kept.
        Without held-out data the training objective per epoch is watched instead.
    eval_particles : particles per point of the held-out objective (default num_particles,
        at least 1; the same random numbers every epoch, so epochs compare without MC noise
        between them); for loss "iwae" it is the IWAE-k bound with k = eval_particles.
    final_particles : particles per training point for ``elbo`` / ``elbo_se`` at the end.
    n_restarts : independent initialisations (seeds) run one after another through the same
        compiled programs; the best held-out objective is kept.
    max_seconds : stop a restart's training after this much run time (stopped "time_limit",
        not converged); None for no limit.
    Returns FitResult with method "minibatch_<loss>", params = every param site (networks as
    pytrees of numpy arrays), objective_trace the per-step objective (the minibatch estimate
    of the whole training set's bound), elbo / elbo_se the training set's ELBO.
    """
    t_start = time.perf_counter()
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if not callable(guide):
        raise ValueError(f"guide must be a guide callable, got {type(guide).__name__}")
    k = check_positive_int(num_particles, "num_particles")
    batch_size = check_positive_int(batch_size, "batch_size")
    max_epochs = check_positive_int(max_epochs, "max_epochs")
    patience = check_positive_int(patience, "patience")
    n_restarts = check_positive_int(n_restarts, "n_restarts")
    final_particles = check_positive_int(final_particles, "final_particles", minimum=2)
    eval_k = check_positive_int(eval_particles if eval_particles is not None else k,
                                "eval_particles")
    if max_seconds is not None:
        max_seconds = check_positive_float(max_seconds, "max_seconds")
    if not (isinstance(min_delta, int | float) and np.isfinite(min_delta) and min_delta >= 0):
        raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
    if optimizer is None:
        optimizer = optax.adam(check_positive_float(learning_rate, "learning_rate"))
    elif not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError("optimizer must be an optax GradientTransformation")
    if validation_args is not None:   # held-out data given: no split of the training data
        validation = None
    kwargs = {**kwargs, **(model_kwargs or {})}
    args, kwargs = prepare_args(model, args, kwargs)
    n = local_structure(model, guide, args, kwargs, plate).n
    margs = split_args(args, kwargs)

    # the training / held-out split
    valid_rows = None
    if validation is not None:
        if not (isinstance(validation, float) and 0.0 < validation < 1.0):
            raise ValueError(f"validation must be a fraction in (0, 1) or None, got "
                             f"{validation!r}")
        n_valid = int(round(validation * n))
        if n_valid < 1 or n - n_valid < batch_size:
            raise ValueError(f"validation={validation} of {n} points leaves {n - n_valid} "
                             f"for training (batch_size {batch_size}) and {n_valid} held out")
        order = np.random.default_rng(seed).permutation(n)
        train_rows, valid_rows = np.sort(order[n_valid:]), np.sort(order[:n_valid])
        train_dyn = _split_rows(margs.dyn, n, train_rows)
        valid_dyn = _split_rows(margs.dyn, n, valid_rows)
        valid_margs = margs
    else:
        train_dyn = margs.dyn
        valid_margs = None
        if validation_args is not None:
            v_args, v_kwargs = prepare_args(model, tuple(validation_args), dict(kwargs))
            local_structure(model, guide, v_args, v_kwargs, plate)
            valid_margs = split_args(v_args, v_kwargs)
            valid_dyn = valid_margs.dyn
    args_t, kwargs_t = margs.rebuild(train_dyn)
    n_train = local_structure(model, guide, args_t, kwargs_t, plate).n
    if batch_size > n_train:
        raise ValueError(f"batch_size={batch_size} exceeds the {n_train} training points")
    steps = n_train // batch_size
    make_loss, objective_name = LOSSES[loss]

    def make_svi():
        return SVI(_on_batch(model, plate), _on_batch(guide, plate), optimizer, make_loss(k))

    def ready(args, kwargs, first):
        svi = make_svi()
        svi.init(jax.random.PRNGKey(0), *args, _batch=first, **kwargs)
        return svi

    first = jnp.arange(batch_size)

    def init(key, dyn):
        a, kw = margs.rebuild(dyn)
        return make_svi().init(key, *a, _batch=first, **kw)

    def epoch(state, key, dyn):
        a, kw = margs.rebuild(dyn)
        svi = ready(a, kw, first)
        batches = jax.random.permutation(key, n_train)[: steps * batch_size]
        batches = batches.reshape(steps, batch_size)

        def step(state, idx):
            return svi.update(state, *a, _batch=idx, **kw)

        return jax.lax.scan(step, state, batches)

    def get_params(state, dyn):
        a, kw = margs.rebuild(dyn)
        return ready(a, kw, first).get_params(state)

    def evaluator(eval_margs, n_points, particles):
        """per-point objective (IWAE-k for loss "iwae", else the ELBO) and raw statistics."""
        a, kw = eval_margs.rebuild(eval_margs.dyn)
        structure = local_structure(model, guide, a, kw, plate)
        chunk, block = chunk_plan(n_points, particles, structure.point_elements)

        def run(params, key, dyn):
            draw = amortized_draw(guide, params, eval_margs.rebuild, plate, structure)
            terms = model_terms(model, params, eval_margs.rebuild, plate, structure)
            return point_statistics(draw, terms, n_points, particles, chunk, block)(key, dyn)

        return run

    keys = jax.random.split(jax.random.PRNGKey(seed), n_restarts + 2)
    state0, compile_time = None, 0.0
    init_c, dt = compile_timed(init, keys[0], train_dyn)
    compile_time += dt
    state0 = init_c(keys[0], train_dyn)
    epoch_c, dt = compile_timed(epoch, state0, keys[0], train_dyn)
    compile_time += dt
    params_c, dt = compile_timed(get_params, state0, train_dyn)
    compile_time += dt
    if valid_margs is not None:
        n_valid_points = len(valid_rows) if valid_rows is not None else local_structure(
            model, guide, *valid_margs.rebuild(valid_dyn), plate).n
        valid_c, dt = compile_timed(evaluator(
            valid_margs if valid_rows is None else _with_dyn(margs, valid_dyn),
            n_valid_points, eval_k), params_c(state0, train_dyn), keys[-1], valid_dyn)
        compile_time += dt

    def held_out(state):
        stats = jax.tree.map(np.asarray, valid_c(params_c(state, train_dyn), keys[-1],
                                                 valid_dyn))
        per_point = (stats["lse"] - np.log(eval_k)) if loss == "iwae" else stats["log_w"][0]
        return float(np.mean(per_point))

    runs, run_time = [], 0.0
    for r in range(n_restarts):
        state = state0 if r == 0 else init_c(keys[r], train_dyn)
        ekey = jax.random.fold_in(keys[r], 1)
        trace, train_obj, valid_obj, seconds = [], [], [], []
        best, best_state, best_epoch, wait, failed, stopped = -np.inf, state, 0, 0, False, None
        bar = tqdm(range(max_epochs), desc=f"{objective_name} restart {r}",
                   disable=not progress_bar)
        restart_time = 0.0
        for e in bar:
            t0 = time.perf_counter()
            state, losses = epoch_c(state, jax.random.fold_in(ekey, e), train_dyn)
            losses = np.asarray(losses)
            run_time += time.perf_counter() - t0
            restart_time += time.perf_counter() - t0
            seconds.append(time.perf_counter() - t0)
            if not np.all(np.isfinite(losses)):
                failed, stopped = True, "nonfinite"
                trace.append(-losses)
                break
            trace.append(-losses)
            train_obj.append(-losses.mean() / n_train)
            watched = held_out(state) if valid_margs is not None else train_obj[-1]
            valid_obj.append(watched)
            bar.set_postfix(train=f"{train_obj[-1]:.4g}", held_out=f"{watched:.4g}")
            if watched > best + min_delta:
                best, best_state, best_epoch, wait = watched, state, e, 0
            else:
                wait += 1
                if wait >= patience:
                    stopped = "early_stopping"
                    break
            if max_seconds is not None and restart_time > max_seconds:
                stopped = "time_limit"
                break
        bar.close()
        runs.append({"state": best_state, "best": best, "best_epoch": best_epoch,
                     "trace": np.concatenate(trace) if trace else np.zeros(0),
                     "train": np.array(train_obj), "held_out": np.array(valid_obj),
                     "failed": failed, "stopped": stopped or "max_epochs",
                     "seconds": np.array(seconds),
                     "epochs": len(train_obj) + int(failed)})
    failed = np.array([run["failed"] for run in runs])
    if failed.all():
        raise FitError(f"minibatch_{loss}: every restart ({n_restarts}) hit a non-finite loss")
    objectives = np.array([-np.inf if run["failed"] else run["best"] for run in runs])
    best_r = int(np.argmax(objectives))
    run = runs[best_r]
    params = to_numpy(params_c(run["state"], train_dyn))
    require_finite(params, "parameters", f"minibatch_{loss}")

    # the training set's ELBO at the kept parameters, many particles per point
    final_c, dt = compile_timed(evaluator(_with_dyn(margs, train_dyn), n_train,
                                          final_particles), params, keys[-2], train_dyn)
    compile_time += dt
    evidence = summarise(final_c(params, keys[-2], train_dyn), final_particles)
    if not np.all(np.isfinite(evidence.elbo.values)):
        raise FitError(f"minibatch_{loss}: non-finite ELBO at the fitted parameters")
    elbo = float(evidence.elbo.values.sum())
    elbo_se = float(np.sqrt(np.sum(evidence.elbo.se ** 2)))
    converged = run["stopped"] == "early_stopping"
    epochs_run = sum(r_["epochs"] for r_ in runs)
    message = (f"minibatch_{loss}: restart {best_r} of {n_restarts} kept; {run['stopped']} "
               f"after {run['epochs']} epochs (best epoch {run['best_epoch']}); held-out "
               f"objective per point {run['best']:.6g}; training ELBO per point "
               f"{elbo / n_train:.6g} +- {elbo_se / n_train:.2g}")
    return FitResult(
        method=f"minibatch_{loss}", params=params, samples=None,
        objective_name=objective_name, objective_trace=run["trace"], elbo=elbo,
        elbo_se=elbo_se, inference_data=None, wall_time=time.perf_counter() - t_start,
        compile_time=compile_time, converged=converged, n_steps=len(run["trace"]),
        diagnostics={
            "n_nonfinite": int(sum(np.sum(~np.isfinite(r_["trace"])) for r_ in runs)),
            "divergences": None, "r_hat_max": None, "ess_bulk_min": None, "message": message,
            "loss": loss, "num_particles": k, "batch_size": batch_size,
            "steps_per_epoch": steps, "n_train": n_train,
            "n_held_out": None if valid_margs is None else n_valid_points,
            "held_out_rows": valid_rows, "held_out_particles": eval_k,
            "epochs": run["epochs"], "best_epoch": run["best_epoch"],
            "stopped": run["stopped"],
            "train_objective_per_epoch": run["train"],
            "held_out_objective_per_epoch": run["held_out"] if valid_margs is not None
            else None,
            "held_out_objective_best": run["best"] if valid_margs is not None else None,
            "epoch_run_time": run_time / max(epochs_run, 1),
            "epoch_seconds": run["seconds"],
            "elbo_per_point": evidence.elbo.values,
            "restart_objectives": objectives, "best_restart": best_r,
            "n_failed_restarts": int(failed.sum())})


def _with_dyn(margs, dyn):
    """ModelArgs whose default arrays are ``dyn`` (a subset of the rows of margs.dyn)."""
    return margs._replace(dyn=dyn)
