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


def _draw_fit(ax, store, row, color, label):
    p = arrays_of(store, row["key"], "aligned")
    covs = full_covariances(p["covariances"], row["covariance_type"], len(p["weights"]), 2)
    for i, (mu, cov) in enumerate(zip(p["means"], covs, strict=True)):
        ellipse(ax, mu, cov, color=color, linewidth=1.3, label=label if i == 0 else None,
                **line_style(row))
    return p


MAX_EQUAL_ASPECT_RATIO = 4.0


def equal_scales(ds, X) -> bool:
    """Whether both axes can share one scale: the same unit and data ranges within a factor
    MAX_EQUAL_ASPECT_RATIO (Old Faithful's 3.5 min of durations against 50 min of waiting
    times would be a sliver)."""
    spans = np.ptp(X, axis=0)
    same_unit = ds.units[0] == ds.units[1]
    return bool(same_unit and spans.min() > 0
                and spans.max() / spans.min() <= MAX_EQUAL_ASPECT_RATIO)


def scale_note(equal: bool) -> str:
    return (" Equal scales on both axes: the ellipses' shapes are the covariances'." if equal
            else " The axes' scales differ (other units or ranges far apart): the ellipses "
                 "are stretched accordingly.")


def _draw_data_and_truth(ax, ds, X, n_components, equal, adjustable="datalim"):
    ax.scatter(X[:, 0], X[:, 1], s=3, color=DATA_COLOR, alpha=0.5, linewidths=0)
    if ds.truth is not None and len(ds.truth["weights"]) == n_components:
        for i, (mu, cov) in enumerate(zip(ds.truth["means"], ds.truth["covariances"],
                                          strict=True)):
            ellipse(ax, mu, cov, label="truth" if i == 0 else None, **TRUTH_STYLE)
    if equal:  # one unit is one unit on both axes
        ax.set_aspect("equal", adjustable=adjustable)


def ellipses_figure(store, dataset, rows, out_dir):
    """Every method's ellipses over one another, on equal axes (side by side, ten panels of
    near-identical ellipses hide the differences an overlay shows)."""
    methods = sort_methods(rows["method"].unique())
    first = rows.iloc[0]
    ds, X = dataset_of(first)
    if X.shape[1] != 2 or not hints_of(first).get("ellipses"):
        return None
    fig, axes = new_figure(1, 1, width=7.0, height=4.2)
    ax = axes[0, 0]
    k, ct = int(first["n_components"]), first["covariance_type"]
    equal = equal_scales(ds, X)
    _draw_data_and_truth(ax, ds, X, k, equal)
    by_method = rows.set_index("method")
    for method in methods:
        row = by_method.loc[method]
        _draw_fit(ax, store, row, method_color(method), status_label(method, row))
    _label_axes(ax, ds)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    truth = " Dashed black: the true components." if ds.truth is not None else ""
    caption = (f"{dataset} (K={k}, {ct} covariances): training data (grey) with each method's "
               "fitted 2-sigma ellipses drawn over one another (point estimate; posterior "
               f"mean for VI/NUTS).{truth}{scale_note(equal)}"
               + uncertified_note(rows))
    return save(fig, out_dir, f"ellipses_{dataset}", caption)


COVARIANCE_ORDER = ("full", "tied", "diag", "spherical")


def covariance_types_figure(store, ok, out_dir, method="em"):
    """Per 2-D Gaussian dataset with ``method`` fitted under two or more covariance types
    (same K and seed): one panel per type, equal axes. None when there is no such dataset."""
    if not len(ok) or "covariance_type" not in ok:
        return None
    rows = ok[(ok["method"] == method) & ok["covariance_type"].isin(COVARIANCE_ORDER)]
    infos = []
    for (dataset, k, _seed), group in rows.groupby(["dataset", "n_components", "seed"]):
        group = group.drop_duplicates("covariance_type")
        if len(group) < 2 or any(i.stem.endswith(f"_{dataset}") for i in infos):
            continue  # one figure per dataset: its first K and seed with several types
        first = group.iloc[0]
        ds, X = dataset_of(first)
        if X.shape[1] != 2 or not hints_of(first).get("ellipses"):
            continue
        types = [c for c in COVARIANCE_ORDER if c in set(group["covariance_type"])]
        equal = equal_scales(ds, X)
        fig, axes = new_figure(1, len(types), width=7.0, height=7.0 / len(types) + 0.9,
                               sharex=True, sharey=True)
        for ax, ct in zip(axes.flat, types, strict=True):
            row = group[group["covariance_type"] == ct].iloc[0]
            _draw_data_and_truth(ax, ds, X, int(k), equal, adjustable="box")  # shared axes
            _draw_fit(ax, store, row, method_color(method), status_label(method, row))
            ax.set_title(ct)
            _label_axes(ax, ds)
        truth = " Dashed black: the true components." if ds.truth is not None else ""
        caption = (f"{dataset} (K={int(k)}): {method}'s 2-sigma ellipses under each covariance "
                   f"type ({', '.join(types)}).{truth}{scale_note(equal)}"
                   + uncertified_note(group))
        infos.append(save(fig, out_dir, f"ellipses_covariance_types_{dataset}", caption))
    return infos or None


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
