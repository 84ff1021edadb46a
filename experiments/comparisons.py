"""Comparisons across cells, computed from the store when the table is built (never by
refitting inside a worker).

``rmse_<param>_vs_em``: for every finished cell of a model with an alignment parameter, the RMS
difference between its parameters and those of the EM cell of the same problem (same dataset
and data, model and options, K, covariance type, seed and split; the prior does not matter to
EM), after matching its components to EM's (Hungarian, on the model's align_param), in the
model's comparable form (Gaussian covariances as full matrices). The reference is the problem's
``em`` cell with em's default options, else its only ``em`` cell; a problem without one gets
no such column (NaN).
"""

from __future__ import annotations

import json

import numpy as np

from . import alignment, metrics

REFERENCE_METHOD = "em"
PROBLEM_COLUMNS = ("dataset", "dataset_params", "model", "model_options", "n_components",
                   "covariance_type", "seed", "held_out_fraction", "data_hash")


def _problem_key(row: dict) -> str:
    return json.dumps([row.get(c) for c in PROBLEM_COLUMNS], default=str)


def _default_options() -> str | None:
    from .methods import METHODS

    entry = METHODS.get(REFERENCE_METHOD)
    return None if entry is None else json.dumps(entry.defaults, sort_keys=True)


def _references(ok: list[dict]) -> dict:
    """{problem key: key of its reference EM cell}."""
    defaults = _default_options()
    groups: dict[str, list] = {}
    for row in ok:
        if row["method"] == REFERENCE_METHOD:
            groups.setdefault(_problem_key(row), []).append(row)
    out = {}
    for pkey, rows in groups.items():
        default = [r for r in rows if r.get("method_options") == defaults]
        if default:
            out[pkey] = default[0]["key"]
        elif len(rows) == 1:
            out[pkey] = rows[0]["key"]
    return out


def _components(model: str, covariance_type: str, names) -> tuple:
    from .models_registry import MODELS

    entry = MODELS.get(model)
    return tuple(names) if entry is None else entry.components(covariance_type)


def vs_reference(est: dict, ref: dict, align_param: str, log_scale: bool, components) -> dict:
    """{rmse_<name>_vs_em} of ``est`` against ``ref`` (both in comparable form) after matching
    est's components to ref's."""
    if align_param not in est or align_param not in ref:
        return {}
    if np.shape(est[align_param]) != np.shape(ref[align_param]):
        return {}
    perm = alignment.match_components(ref[align_param], est[align_param], log_scale)
    return metrics.parameter_errors(alignment.permute_params(est, perm, components), ref,
                                    "vs_em")


def add_reference_columns(rows: list[dict], compare_arrays, cache: dict | None = None):
    """Add the rmse_*_vs_em columns to ``rows`` (row dicts, in place).

    compare_arrays(key) -> {name: array} reads a cell's stored comparable parameters; cache
    {(key, reference key): columns} keeps results across calls (cells never change)."""
    cache = {} if cache is None else cache
    ok = [r for r in rows if r.get("status") == "ok" and r.get("align_param")]
    refs = _references(ok)
    for row in ok:
        ref_key = refs.get(_problem_key(row))
        if ref_key is None:
            continue
        pair = (row["key"], ref_key)
        if pair not in cache:
            est, ref = compare_arrays(row["key"]), compare_arrays(ref_key)
            cache[pair] = {} if not est or not ref else vs_reference(
                est, ref, row["align_param"], bool(row.get("align_log_scale")),
                _components(row["model"], row.get("covariance_type") or "", est))
        row.update(cache[pair])
