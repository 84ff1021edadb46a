"""1-D data: histogram with each method's fitted mixture (a pmf or a density: the model's
figure hint "marginal")."""

from __future__ import annotations

import numpy as np

from .data import arrays_of, dataset_of, hints_of
from .style import TRUTH_STYLE, axis_label, legend_columns, line_style, method_color, new_figure, \
    save, sort_methods, status_label, uncertified_note


def marginal_figure(store, dataset, rows, out_dir):
    first = rows.iloc[0]
    ds, X = dataset_of(first)
    hints = hints_of(first)
    mixture = hints.get("marginal")  # (grid, params, covariance_type) -> density or pmf
    if X.shape[1] != 1 or mixture is None:
        return None
    discrete = bool(hints.get("discrete"))
    x = X[:, 0]
    methods = sort_methods(rows["method"].unique())
    has_truth = ds.truth is not None and len(ds.truth["weights"]) == int(first["n_components"])
    labels = (["data"] + [status_label(m, rows[rows["method"] == m].iloc[0]) for m in methods]
              + (["truth"] if has_truth else []))
    ncol = legend_columns(labels, 7.0, most=4)
    legend_in = 0.2 * -(-len(labels) // ncol) + 0.25
    # the legend gets a row of its own below the panel: inside, it covers the histogram;
    # anchored below the panel, tight_layout's shrinking of the panel moved it onto the x label
    fig, axes = new_figure(2, 1, width=7.0, height=2.8 + legend_in,
                           gridspec_kw={"height_ratios": [2.8, legend_in]})
    ax, legend_ax = axes[0, 0], axes[1, 0]
    if discrete:
        grid = np.arange(0, int(x.max()) + 3)
        freq = np.bincount(x.astype(int), minlength=len(grid))[: len(grid)] / len(x)
        ax.bar(grid, freq, width=0.8, color="0.85", edgecolor="0.6", label="data")
        def density(g, p, truth=False):
            return mixture(g, p, "")

        ylabel = "probability"
    else:
        grid = np.linspace(x.min() - 0.1 * np.ptp(x), x.max() + 0.1 * np.ptp(x), 400)
        ax.hist(x, bins=40, density=True, color="0.85", edgecolor="0.6", label="data")
        ct = first["covariance_type"]

        def density(g, p, truth=False):
            return mixture(g, p, "full" if truth else ct)

        ylabel = f"density (1/{ds.units[0]})"
    for method in methods:
        row = rows[rows["method"] == method].iloc[0]
        p = arrays_of(store, row["key"], "aligned")
        style = {"marker": "o", "markersize": 3} if discrete else {}
        ax.plot(grid, density(grid, p), color=method_color(method), linewidth=1.2,
                label=status_label(method, row), **style, **line_style(row))
    if has_truth:
        ax.plot(grid, density(grid, ds.truth, truth=True), label="truth", **TRUTH_STYLE)
    ax.set_xlabel(axis_label(ds.feature_names[0], ds.units[0]))
    ax.set_ylabel(ylabel)
    handles, labels = ax.get_legend_handles_labels()
    legend_ax.axis("off")
    legend_ax.legend(handles, labels, loc="upper center", ncol=ncol)
    kind = "counts with each method's fitted mixture pmf" if discrete else \
        "values (density histogram) with each method's fitted mixture density"
    caption = (f"{dataset} (K={int(first['n_components'])}): training {kind}"
               + ("; dashed: the true mixture." if ds.truth is not None else ".")
               + uncertified_note(rows))
    prefix = hints.get("marginal_stem", "pmf" if discrete else "density")
    return save(fig, out_dir, f"{prefix}_{dataset}", caption)
