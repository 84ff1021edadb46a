"""Score one fit: the metric columns of its row and the arrays its cell stores.

Every model gets n_train / n_test / n_features. Then either the model's own ``score`` hook
(ModelEntry.score: models with local latents report held-out log p(x) estimates) or the plug-in
metrics of metrics.fit_metrics (log-likelihoods at the point estimate, log prior and joint,
BIC/AIC/ICL, ARI, elbo_em). Models with an ``align_param`` are label-aligned first:

- anchor: the true parameters when the dataset has them with K components, else the cell's
  shared initialisation (one anchor for every method of a problem, so their stored components
  line up), else the fit itself;
- posterior draws are matched to the anchor one by one (undoes label switching);
- rmse_<param>_vs_truth against the truth; the comparisons across cells ("vs EM") are made
  from the store at table time (comparisons.py), not here.
"""

from __future__ import annotations

import numpy as np

from . import alignment, metrics


def _key_name(key) -> str:
    """One step of a pytree path as a name: a dict key, an attribute, a list index."""
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def flat_arrays(tree, prefix: str) -> dict:
    """{prefix/name[/sub...]: array} of a (nested) dict of arrays and pytrees; a network's
    parameters (an equinox module, lists of weights) are flattened along their pytree paths
    (``param/decoder$params/weights/0``); non-numeric leaves are skipped."""
    import jax

    out = {}
    for name, value in (tree or {}).items():
        path = f"{prefix}/{name}"
        if isinstance(value, dict):
            out.update(flat_arrays(value, path))
            continue
        for keys, leaf in jax.tree_util.tree_flatten_with_path(value)[0]:
            try:
                a = np.asarray(leaf)
            except Exception:  # noqa: BLE001
                continue
            if a.dtype.kind in "biuf":
                out["/".join([path, *map(_key_name, keys)])] = a
    return out


def _anchor(problem, params):
    """(anchor params, "truth" | "init" | "self")."""
    model, k = problem.model, problem.n_components
    truth = problem.dataset.truth
    p = model.align_param
    shape = np.shape(params[p])
    if truth is not None and p in truth and len(truth["weights"]) == k \
            and np.shape(truth[p]) == shape:
        return truth, "truth"
    init = problem.init
    if init is not None and p in init and np.shape(init[p]) == shape:
        return init, "init"
    return params, "self"


def align(problem, params, samples):
    """(aligned params, aligned draws or None, anchor kind) for a model with align_param."""
    model = problem.model
    p = model.align_param
    names = model.components(problem.covariance_type)
    reference, kind = _anchor(problem, params)
    perm = alignment.match_components(reference[p], params[p], model.align_log_scale)
    aligned = alignment.permute_params(params, perm, names)
    aligned_samples = None
    if samples is not None and p in samples:
        aligned_samples = alignment.align_samples(samples, reference[p], p, names,
                                                  model.align_log_scale)
    return aligned, aligned_samples, kind


def score(problem, fit, is_em: bool) -> tuple[dict, dict]:
    """(metric columns, arrays to store) for a fitted cell."""
    model = problem.model
    X = problem.X_train
    row = {"n_train": len(X), "n_test": len(problem.X_test), "n_features": X.shape[1]}
    arrays = {"trace": np.asarray(fit.objective_trace, dtype=float)}
    if model.score is not None:
        scored = model.score(problem, fit)
        if isinstance(scored, tuple):  # (columns, what the model's figures draw)
            scored, drawn = scored
            arrays.update({f"model/{k}": np.asarray(v) for k, v in drawn.items()})
        row.update(scored)
    else:
        row.update(metrics.fit_metrics(problem, fit, is_em))
    arrays.update(flat_arrays(fit.params, "param"))
    p = model.align_param
    params = {k: np.asarray(v) for k, v in fit.params.items() if not isinstance(v, dict)}
    samples = None if fit.samples is None else {
        k: np.asarray(v) for k, v in fit.samples.items() if not isinstance(v, dict)}
    if p is None or p not in params:
        # no alignment: summaries of the declared global parameters only (draws of local
        # latents, one per data point, are not parameters)
        globals_ = {k: v for k, v in (samples or {}).items() if k in model.param_names}
        if globals_:
            row.update(metrics.posterior_summaries(globals_))
        return row, arrays
    aligned, aligned_samples, kind = align(problem, params, samples)
    row.update(align_param=p, align_log_scale=model.align_log_scale, aligned_to=kind)
    d = X.shape[1]
    ct = problem.covariance_type
    if kind == "truth":
        row.update(metrics.parameter_errors(model.comparable(aligned, ct, d),
                                            model.comparable(problem.dataset.truth, "full", d),
                                            "vs_truth"))
    if aligned_samples is not None:
        row.update(metrics.posterior_summaries(aligned_samples))
    arrays.update(flat_arrays(aligned, "aligned"))
    arrays.update(flat_arrays(model.comparable(aligned, ct, d), "compare"))
    if aligned_samples is not None:
        arrays.update(flat_arrays(aligned_samples, "sample"))
    return row, arrays
