"""2-D data figures: fitted 2-sigma ellipses over the true ones; soft-clustering certainty."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Ellipse

from ..densities import full_covariances, gaussian_log_joint_matrix, responsibilities
from .data import arrays_of, dataset_of, hints_of
from .style import DATA_COLOR, TRUTH_STYLE, axis_label, line_style, method_color, new_figure, \
    save, sort_methods, status_label, uncertified_note


def ellipse(ax, mean, cov, n_sd=2.0, **style):
    """Draw the n_sd-sigma contour of N(mean (2,), cov (2, 2))."""
    vals, vecs = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    w, h = 2 * n_sd * np.sqrt(vals[::-1])
    ax.add_patch(Ellipse(mean, w, h, angle=angle, fill=False, **style))


def _label_axes(ax, ds):
    ax.set_xlabel(axis_label(ds.feature_names[0], ds.units[0]))
    ax.set_ylabel(axis_label(ds.feature_names[1], ds.units[1]))


def ellipses_figure(store, dataset, rows, out_dir):
    methods = sort_methods(rows["method"].unique())
    first = rows.iloc[0]
    ds, X = dataset_of(first)
    if X.shape[1] != 2 or not hints_of(first).get("ellipses"):
        return None
    ncols = min(4, len(methods))
    nrows = int(np.ceil(len(methods) / ncols))
    fig, axes = new_figure(nrows, ncols, width=2.6 * ncols, height=2.5 * nrows + 0.3,
                           sharex=True, sharey=True)
    by_method = rows.set_index("method")
    for ax, method in zip(axes.flat, methods, strict=False):
        row = by_method.loc[method]
        p = arrays_of(store, row["key"], "aligned")
        ax.scatter(X[:, 0], X[:, 1], s=3, color=DATA_COLOR, alpha=0.5, linewidths=0)
        if ds.truth is not None and len(ds.truth["weights"]) == len(p["weights"]):
            for mu, cov in zip(ds.truth["means"], ds.truth["covariances"], strict=True):
                ellipse(ax, mu, cov, **TRUTH_STYLE)
        covs = full_covariances(p["covariances"], row["covariance_type"], len(p["weights"]), 2)
        for mu, cov in zip(p["means"], covs, strict=True):
            ellipse(ax, mu, cov, color=method_color(method), linewidth=1.6, **line_style(row))
        ax.set_title(status_label(method, row))
        _label_axes(ax, ds)
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    k, ct = int(first["n_components"]), first["covariance_type"]
    truth = " Dashed black: the true components." if ds.truth is not None else ""
    caption = (f"{dataset} (K={k}, {ct} covariances): training data (grey) with each method's "
               f"fitted 2-sigma ellipses (point estimate; posterior mean for VI/NUTS).{truth}"
               + uncertified_note(rows))
    return save(fig, out_dir, f"ellipses_{dataset}", caption)


def _size(certainty):
    return 4 + 16 * np.asarray(certainty) ** 4


def _alpha(certainty):
    return float(np.clip(0.15 + 0.85 * np.min(certainty), 0, 1)) if np.ndim(certainty) == 0 \
        else np.clip(0.15 + 0.85 * np.asarray(certainty), 0, 1)


def certainty_figure(store, dataset, rows, out_dir, methods=("em", "vi_full_rank")):
    present = [m for m in methods if m in set(rows["method"])]
    first = rows.iloc[0]
    ds, X = dataset_of(first)
    if not present or X.shape[1] != 2 or not hints_of(first).get("ellipses"):
        return None
    fig, axes = new_figure(1, len(present), width=3.4 * len(present) + 1.2, height=3.2,
                           sharex=True, sharey=True)
    by_method = rows.set_index("method")
    for ax, method in zip(axes.flat, present, strict=True):
        row = by_method.loc[method]
        p = arrays_of(store, row["key"], "aligned")
        q = responsibilities(gaussian_log_joint_matrix(X, p, row["covariance_type"]))
        certainty = q.max(1)
        ax.scatter(X[:, 0], X[:, 1], c=q.argmax(1), cmap="tab10", vmin=0, vmax=9,
                   s=_size(certainty), alpha=_alpha(certainty), linewidths=0)
        ax.set_title(status_label(method, row))
        _label_axes(ax, ds)
    levels = (0.5, 0.8, 0.95, 1.0)
    handles = [ax.scatter([], [], s=_size(c), alpha=_alpha(c), color="0.3") for c in levels]
    axes.flat[-1].legend(handles, [f"{c:g}" for c in levels], title="max_k p(z=k | x)",
                         loc="center left", bbox_to_anchor=(1.0, 0.5))
    caption = (f"{dataset}: soft clustering. Colour = most probable component; size and "
               "opacity grow with its posterior probability max_k p(z=k | x) (faint, small "
               "points sit between clusters)."
               + uncertified_note(rows[rows["method"].isin(present)]))
    return save(fig, out_dir, f"certainty_{dataset}", caption)
