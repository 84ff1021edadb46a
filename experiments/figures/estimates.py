"""Point estimates with uncertainty per method, in the style of ArviZ's forest plot: a dot at the
point estimate, a thick bar for the 50% and a thin bar for the 94% equal-tailed posterior
interval (VI, NUTS, scikit-learn's VB), truth as a black cross."""

from __future__ import annotations

import numpy as np

from .data import arrays_of, dataset_of, k_text
from .style import line_style, marker_style, method_color, new_figure, save, sort_methods, \
    status_label, uncertified_note

PANELS = (("weights", "weight (probability)"), ("means", "mean ({unit})"),
          ("rates", "rate ({unit} per observation)"))


def _entries(value, name):
    """Flatten (K, ...) into (labels, values (E,)) or draws (S, K, ...) into (S, E)."""
    value = np.asarray(value)
    k_shape = value.shape
    labels = [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(k_shape)]
    return labels, value.reshape(-1)


def forest_figure(store, dataset, rows, out_dir):
    first = rows.iloc[0]
    ds, _ = dataset_of(first)
    unit = ds.units[0] if len(set(ds.units)) == 1 else "data units"
    methods = sort_methods(rows["method"].unique())
    by_method = rows.set_index("method")
    fits = {m: (arrays_of(store, by_method.loc[m, "key"], "aligned"),
                arrays_of(store, by_method.loc[m, "key"], "sample")) for m in methods}
    names = {n for f in fits.values() for n in f[0]} - {"covariances"}
    known = dict(PANELS)
    panels = [(n, known[n]) for n, _ in PANELS if n in names]
    panels += [(n, f"{n} (model units)") for n in sorted(names - set(known))]
    if not panels:
        return None
    n_entries = max(np.size(next(f[0][n] for f in fits.values() if n in f[0]))
                    for n, _ in panels)
    fig, axes = new_figure(1, len(panels), width=3.4 * len(panels),
                           height=1.0 + 0.16 * n_entries * len(methods) + 0.3)
    offsets = np.linspace(0.3, -0.3, len(methods)) if len(methods) > 1 else np.zeros(1)
    for ax, (name, xlabel) in zip(axes.flat, panels, strict=True):
        labels = None
        for off, method in zip(offsets, methods, strict=True):
            point, draws = fits[method]
            row = by_method.loc[method]
            if name not in point:
                continue
            labels, values = _entries(point[name], name)
            y = np.arange(len(values))[::-1] + off
            color = method_color(method)
            if name in draws:
                d = np.asarray(draws[name]).reshape(len(draws[name]), -1)
                lo94, lo50, hi50, hi94 = np.percentile(d, [3, 25, 75, 97], axis=0)
                ax.hlines(y, lo94, hi94, color=color, linewidth=0.9, **line_style(row))
                ax.hlines(y, lo50, hi50, color=color, linewidth=2.6, **line_style(row))
            ax.plot(values, y, "o", color=color, markersize=3.5,
                    label=status_label(method, row), **marker_style(row))
        truth = ds.truth
        if truth is not None and name in truth and np.size(truth[name]) == len(labels or []):
            t = np.asarray(truth[name]).reshape(-1)
            ax.plot(t, np.arange(len(t))[::-1], "x", color="black", markersize=6, label="truth")
        if labels:
            ax.set_yticks(np.arange(len(labels))[::-1], labels)
        ax.set_xlabel(xlabel.format(unit=unit))
        ax.grid(axis="y", visible=False)
    axes.flat[-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    k = k_text(first)
    caption = (f"{dataset} ({k}): point estimates per method after label alignment (dots; "
               "posterior mean for VI/NUTS/VB) with 50% (thick) and 94% (thin) posterior "
               "intervals for the posterior methods"
               + ("; crosses: true values." if ds.truth is not None else ".")
               + uncertified_note(rows))
    return save(fig, out_dir, f"estimates_{dataset}", caption)
