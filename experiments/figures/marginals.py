"""1-D data: histogram with each method's fitted mixture (Poisson pmf, Gaussian density)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..densities import full_covariances
from .data import arrays_of, dataset_of
from .style import TRUTH_STYLE, axis_label, method_color, new_figure, save, sort_methods


def _poisson_pmf(grid, params):
    w, r = np.asarray(params["weights"]), np.asarray(params["rates"]).reshape(-1)
    return (w[:, None] * stats.poisson.pmf(grid[None, :], r[:, None])).sum(0)


def _gaussian_pdf(grid, params, covariance_type="full"):
    w = np.asarray(params["weights"])
    mu = np.asarray(params["means"]).reshape(-1)
    var = full_covariances(params["covariances"], covariance_type, len(w), 1)[:, 0, 0]
    return (w[:, None] * stats.norm.pdf(grid[None, :], mu[:, None], np.sqrt(var)[:, None])).sum(0)


def marginal_figure(store, dataset, rows, out_dir):
    first = rows.iloc[0]
    ds, X = dataset_of(first)
    if X.shape[1] != 1 or first["model"] not in ("poisson_mixture", "gaussian_mixture"):
        return None
    poisson = first["model"] == "poisson_mixture"
    x = X[:, 0]
    fig, axes = new_figure(1, 1, width=6.0, height=3.6)
    ax = axes[0, 0]
    if poisson:
        grid = np.arange(0, int(x.max()) + 3)
        freq = np.bincount(x.astype(int), minlength=len(grid))[: len(grid)] / len(x)
        ax.bar(grid, freq, width=0.8, color="0.85", edgecolor="0.6", label="data")
        def density(g, p, truth=False):
            return _poisson_pmf(g, p)

        ylabel = "probability"
    else:
        grid = np.linspace(x.min() - 0.1 * np.ptp(x), x.max() + 0.1 * np.ptp(x), 400)
        ax.hist(x, bins=40, density=True, color="0.85", edgecolor="0.6", label="data")
        ct = first["covariance_type"]

        def density(g, p, truth=False):
            return _gaussian_pdf(g, p, "full" if truth else ct)

        ylabel = f"density (1/{ds.units[0]})"
    for method in sort_methods(rows["method"].unique()):
        key = rows[rows["method"] == method]["key"].iloc[0]
        p = arrays_of(store, key, "aligned")
        style = {"marker": "o", "markersize": 3} if poisson else {}
        ax.plot(grid, density(grid, p), color=method_color(method), linewidth=1.2,
                label=method, **style)
    if ds.truth is not None and len(ds.truth["weights"]) == int(first["n_components"]):
        ax.plot(grid, density(grid, ds.truth, truth=True), label="truth", **TRUTH_STYLE)
    ax.set_xlabel(axis_label(ds.feature_names[0], ds.units[0]))
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper right", ncol=2)
    kind = "counts with each method's fitted mixture pmf" if poisson else \
        "values (density histogram) with each method's fitted mixture density"
    caption = (f"{dataset} (K={int(first['n_components'])}): training {kind}"
               + ("; dashed: the true mixture." if ds.truth is not None else "."))
    prefix = "poisson" if poisson else "density"
    return save(fig, out_dir, f"{prefix}_{dataset}", caption)
