"""Point estimates with uncertainty per method, in the style of ArviZ's forest plot, drawn as
differences from a reference fit (EM's certified estimate, else the median over methods): on
one shared axis, differences of 0.05 between methods vanish next to means of 50. A dot at the
point estimate, a thick bar for the 50% and a thin bar for the 94% equal-tailed posterior
interval (VI, NUTS, scikit-learn's VB), truth as a black cross."""

from __future__ import annotations

import numpy as np

from .data import arrays_of, dataset_of, hints_of, k_text
from .style import is_certified, legend_columns, line_style, marker_style, method_color, \
    new_figure, save, sort_methods, status_label, uncertified_note

# (parameter, panel title, unit of the drawn difference, its divisor: 1, or the training data's
# sd / variance per feature, so features of different scales share the axis)
PANELS = (("weights", "weights", "probability", None), ("means", "means", "data sd", "sd"),
          ("rates", "rates", "data sd", "sd"),
          ("variances", "variances", "data var.", "var"))


def _entries(value, name):
    """Flatten (K, ...) into (labels, values (E,))."""
    value = np.asarray(value)
    labels = [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(value.shape)]
    return labels, value.reshape(-1)


def reference_of(fits, rows, methods):
    """(name of the reference, {param: values}): the certified em fit, else the median of the
    methods' point estimates."""
    by_method = rows.set_index("method")
    if "em" in fits and is_certified(by_method.loc["em"]):
        return "em's estimate", fits["em"][0]
    names = {n for f in fits.values() for n in f[0]}
    ref = {}
    for n in names:
        values = [np.asarray(fits[m][0][n]) for m in methods if n in fits[m][0]]
        if len({v.shape for v in values}) == 1:
            ref[n] = np.median(np.stack(values), axis=0)
    return "the median over methods", ref


def feature_scale(X, name, how, size):
    """(E,) divisor of a parameter's flattened (K, D) entries: the training data's sd or
    variance of each entry's feature (1 where how is None or the shape is not (K, D))."""
    d = X.shape[1]
    if how is None or size % d:
        return np.ones(size)
    per_feature = X.std(axis=0) if how == "sd" else X.var(axis=0)
    return np.tile(np.where(per_feature > 0, per_feature, 1.0), size // d)


def forest_figure(store, dataset, rows, out_dir):
    first = rows.iloc[0]
    ds, X = dataset_of(first)
    X = np.asarray(X, float)
    ct = first["covariance_type"] if isinstance(first["covariance_type"], str) else ""
    # the model's arrays as drawn (the Gaussian's covariances as variances, say)
    drawn = hints_of(first).get("forest_arrays", lambda arrays, covariance_type: arrays)
    methods = sort_methods(rows["method"].unique())
    by_method = rows.set_index("method")
    fits = {m: (drawn(arrays_of(store, by_method.loc[m, "key"], "aligned"), ct),
                drawn(arrays_of(store, by_method.loc[m, "key"], "sample"), ct))
            for m in methods}
    ref_name, ref = reference_of(fits, rows, methods)
    names = {n for f in fits.values() for n in f[0]} & set(ref)
    known = {n: rest for n, *rest in PANELS}
    panels = [(n, *known[n]) for n, *_ in PANELS if n in names]
    panels += [(n, n, "model units", None) for n in sorted(names - set(known))]
    if not panels:
        return None
    n_entries = max(np.size(ref[n]) for n, *_ in panels)
    fig, axes = new_figure(1, len(panels), width=min(7.0, 3.4 * len(panels)),
                           height=1.4 + 0.13 * n_entries * len(methods))
    offsets = np.linspace(0.3, -0.3, len(methods)) if len(methods) > 1 else np.zeros(1)
    largest = {}
    for ax, (name, title, unit_text, how) in zip(axes.flat, panels, strict=True):
        labels, base = _entries(ref[name], name)
        scale = feature_scale(X, name, how, len(base))
        for off, method in zip(offsets, methods, strict=True):
            point, draws = fits[method]
            row = by_method.loc[method]
            if name not in point or np.size(point[name]) != len(base):
                continue
            values = (np.asarray(point[name], float).reshape(-1) - base) / scale
            largest[method] = max(largest.get(method, 0.0), float(np.max(np.abs(values))))
            y = np.arange(len(values))[::-1] + off
            color = method_color(method)
            if name in draws:
                d = (np.asarray(draws[name]).reshape(len(draws[name]), -1) - base) / scale
                lo94, lo50, hi50, hi94 = np.percentile(d, [3, 25, 75, 97], axis=0)
                ax.hlines(y, lo94, hi94, color=color, linewidth=0.9, **line_style(row))
                ax.hlines(y, lo50, hi50, color=color, linewidth=2.6, **line_style(row))
            ax.plot(values, y, "o", color=color, markersize=3.5,
                    label=status_label(method, row) if ax is axes.flat[0] else None,
                    **marker_style(row))
        truth = drawn(ds.truth, "full") if ds.truth is not None else None
        if truth is not None and name in truth and np.size(truth[name]) == len(base):
            t = (np.asarray(truth[name], float).reshape(-1) - base) / scale
            ax.plot(t, np.arange(len(t))[::-1], "x", color="black", markersize=6,
                    label="truth" if ax is axes.flat[0] else None)
        ax.axvline(0.0, color="0.5", linewidth=0.8)
        ax.set_yticks(np.arange(len(labels))[::-1], labels)
        ax.set_title(title)
        ax.set_xlabel(f"difference ({unit_text})")
        ax.grid(axis="y", visible=False)
    labels = {label for ax in axes.flat for label in ax.get_legend_handles_labels()[1]}
    ncol = legend_columns(labels, fig.get_figwidth())
    fig.legend(loc="upper center", ncol=ncol)
    height = fig.get_figheight()
    n_legend_rows = int(np.ceil(len(labels) / ncol))
    k = k_text(first)
    spread = ", ".join(f"{m} {largest[m]:.2g}" for m in methods if m in largest)
    caption = (f"{dataset} ({k}): point estimates per method after label alignment (dots; "
               "posterior mean for VI/NUTS/VB) with 50% (thick) and 94% (thin) posterior "
               f"intervals for the posterior methods, each drawn as its difference from "
               f"{ref_name}, means, rates and variances divided by the training data's sd "
               "(variance) of their feature, so that every entry shares one axis at its own "
               "scale"
               + ("; crosses: true values" if ds.truth is not None else "")
               + f". Largest |difference| per method, in those units: {spread}."
               + uncertified_note(rows))
    return save(fig, out_dir, f"estimates_{dataset}", caption,
                rect=(0, 0, 1, 1 - (0.25 + 0.2 * n_legend_rows) / height))
