"""Label alignment: mixture components are exchangeable, so before comparing parameters of two
fits (or a fit and the truth) their components are matched by optimal assignment
(scipy.optimize.linear_sum_assignment, the Hungarian algorithm).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def match_components(reference, estimate, log_scale=False):
    """Permutation ``perm`` (K,) with ``estimate[perm]`` closest to ``reference`` row by row.

    reference, estimate: (K, ...) arrays of one component parameter (means (K, D), rates
    (K, D)); the cost is the squared Euclidean distance (of logs when ``log_scale``, for rates).
    """
    ref = np.asarray(reference, dtype=float).reshape(len(reference), -1)
    est = np.asarray(estimate, dtype=float).reshape(len(estimate), -1)
    if ref.shape != est.shape:
        raise ValueError(f"cannot match {est.shape[0]} components to {ref.shape[0]}")
    if log_scale:
        ref, est = np.log(np.maximum(ref, 1e-300)), np.log(np.maximum(est, 1e-300))
    cost = ((ref[:, None, :] - est[None, :, :]) ** 2).sum(-1)  # (K, K), K small
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(ref), dtype=int)
    perm[rows] = cols
    return perm


def permute_params(params, perm, component_names):
    """Reorder the component axis (axis 0) of each parameter named in ``component_names``."""
    return {k: (np.asarray(v)[perm] if k in component_names else np.asarray(v))
            for k, v in params.items()}


def permute_samples(samples, perms, component_names):
    """Per-draw reorder: samples {name: (S, K, ...)}, perms (S, K)."""
    out = {}
    for k, v in samples.items():
        v = np.asarray(v)
        if k in component_names:
            out[k] = np.take_along_axis(v, perms.reshape(perms.shape + (1,) * (v.ndim - 2)),
                                        axis=1)
        else:
            out[k] = v
    return out


def align_samples(samples, reference, align_param, component_names, log_scale=False):
    """Match every posterior draw to ``reference`` (K, ...) independently (undoes label
    switching within and across chains). samples {name: (S, K, ...)}."""
    draws = np.asarray(samples[align_param])
    perms = np.stack([match_components(reference, d, log_scale) for d in draws])
    return permute_samples(samples, perms, component_names)


def align_labels(true_labels, pred_labels, n_components=None):
    """Relabel ``pred_labels`` (N,) to agree with ``true_labels`` (N,) as often as possible.

    Returns (relabelled (N,), mapping) where mapping[j] is the true label given to predicted
    label j. Maximises the diagonal of the contingency table by linear_sum_assignment.
    """
    t = np.asarray(true_labels, dtype=int)
    p = np.asarray(pred_labels, dtype=int)
    k = max(t.max() + 1, p.max() + 1, n_components or 0)
    table = np.zeros((k, k), dtype=int)
    np.add.at(table, (p, t), 1)
    rows, cols = linear_sum_assignment(-table)
    mapping = np.empty(k, dtype=int)
    mapping[rows] = cols
    return mapping[p], mapping
