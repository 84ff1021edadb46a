"""Posterior predictive check per dataset: the training data's histogram of each feature
against the histograms that data sets replicated from the posterior would have.

For a posterior draw theta_s, a replicated data set of the same size N puts Binomial(N,
p_b(theta_s)) points into bin b, p_b being the bin's probability under theta_s (the model's
"marginal" figure hint, integrated over the bin; a pmf for counts). The band is the 5-95%
range of those replicated frequencies over draws and binomial noise together, so an observed
bin outside it is one the model rarely reproduces. The posterior comes from the best method
the cell group has: NUTS when its chains mixed, else a VI guide or variational Bayes.
"""

from __future__ import annotations

import numpy as np

from .data import arrays_of, dataset_of, hints_of, k_text
from .style import axis_label, is_certified, legend_columns, method_color, new_figure, save

POSTERIOR_PREFERENCE = ("nuts", "vi_full_rank", "vi_low_rank", "vi_mean_field", "cavi",
                        "sklearn_vb")
MAX_DRAWS = 200
MAX_FEATURES = 4
BAND = (5, 95)


def posterior_source(store, rows):
    """(row, draws {name: (S, ...)}) of the preferred certified method with stored draws, or
    None."""
    for method in POSTERIOR_PREFERENCE:
        sel = rows[rows["method"] == method]
        if not len(sel):
            continue
        row = sel.iloc[0]
        if not is_certified(row):
            continue  # a chain that did not mix is never the posterior shown
        draws = arrays_of(store, row["key"], "sample")
        if draws.get("weights") is not None and len(draws["weights"]):
            return row, draws
    return None


def replicated_frequencies(bin_probs, n, rng):
    """(S, B) frequencies of replicated data sets of size n: Binomial(n, p) / n per bin."""
    return rng.binomial(n, np.clip(bin_probs, 0.0, 1.0)) / n


def histogram_bins(x, discrete):
    """(bins, observed (B,) fractions, centres (B,), bar widths (B,)) of one feature: for
    counts the integers 0 .. max + 2 (bins holds them), else bins = the B + 1 edges."""
    n = len(x)
    if discrete:
        support = np.arange(0, int(x.max()) + 3)
        observed = np.bincount(x.astype(int), minlength=len(support))[: len(support)] / n
        return support, observed, support.astype(float), np.full(len(support), 0.8)
    edges = np.histogram_bin_edges(x, bins=min(30, max(8, int(np.sqrt(n)))))
    observed = np.histogram(x, bins=edges)[0] / n
    return edges, observed, 0.5 * (edges[:-1] + edges[1:]), np.diff(edges)


def bin_probabilities(mixture, params, ct, feature, bins, discrete, n_features):
    """(B,) probability of each bin under one draw: the pmf at the integers for counts, the
    density integrated over each bin (Simpson's rule, 17 points) otherwise."""
    def density(g):
        return mixture(g, params, ct) if n_features == 1 else mixture(g, params, ct,
                                                                      feature=feature)
    if discrete:
        return density(bins)
    from scipy.integrate import simpson

    fine = np.linspace(bins[:-1], bins[1:], 17, axis=1)  # (B, 17), bins = the edges
    values = density(fine.reshape(-1)).reshape(fine.shape)
    return simpson(values, x=fine, axis=1)


def ppc_figure(store, dataset, rows, out_dir):
    first = rows.iloc[0]
    mixture = hints_of(first).get("marginal")
    source = posterior_source(store, rows) if mixture is not None else None
    if source is None:
        return None
    row, draws = source
    discrete = bool(hints_of(first).get("discrete"))
    ds, X = dataset_of(first)
    n, d = X.shape
    ct = first["covariance_type"] if isinstance(first["covariance_type"], str) else ""
    n_draws = len(draws["weights"])
    pick = np.unique(np.linspace(0, n_draws - 1, min(MAX_DRAWS, n_draws)).astype(int))
    features = range(min(d, MAX_FEATURES))
    # two panels across a page at most: more features take more rows, not narrower panels
    ncols = min(2, len(features))
    nrows = int(np.ceil(len(features) / ncols))
    fig, axes = new_figure(nrows, ncols, width=3.5 * ncols, height=2.6 * nrows + 0.4)
    for ax in list(axes.flat)[len(features):]:
        ax.set_visible(False)
    rng = np.random.default_rng(0)
    outside, total = [], 0
    for ax, j in zip(axes.flat, features, strict=False):
        bins, observed, centers, widths = histogram_bins(X[:, j], discrete)
        probs = np.stack([bin_probabilities(mixture, {k: v[s] for k, v in draws.items()}, ct,
                                            j, bins, discrete, d) for s in pick])
        rep = replicated_frequencies(probs, n, rng)
        low, mid, high = np.percentile(rep, [BAND[0], 50, BAND[1]], axis=0)
        color = method_color(row["method"])
        ax.bar(centers, high - low, bottom=low, width=widths, color=color, alpha=0.35,
               linewidth=0, label=f"{BAND[0]}-{BAND[1]}% band")
        ax.hlines(mid, centers - widths / 2, centers + widths / 2, color=color, linewidth=1,
                  label="band median")
        miss = (observed < low) | (observed > high)
        ax.plot(centers[~miss], observed[~miss], "o", color="black", markersize=3,
                label="data")
        ax.plot(centers[miss], observed[miss], "o", color="black", markersize=5,
                markerfacecolor="none", label="data outside")
        outside.append(int(miss.sum()))
        total += len(miss)
        ax.set_xlabel(axis_label(ds.feature_names[j], ds.units[j]))
        ax.set_ylabel("fraction of points")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    ncol = legend_columns(labels, fig.get_figwidth(), most=4)
    fig.legend(handles, labels, loc="upper center", ncol=ncol)
    height = fig.get_figheight()
    shown = "" if d <= MAX_FEATURES else f" (the first {MAX_FEATURES} of {d} features)"
    caption = (f"{dataset} ({k_text(first)}): posterior predictive check from "
               f"{row['method']} ({len(pick)} draws){shown}. Shaded bars: the 5-95% range "
               "of the histograms of replicated data sets of the same size (per draw, "
               "Binomial(N, bin probability) per bin), a line at their median; dots: the "
               f"observed fractions, hollow where outside the band: {sum(outside)} of {total} "
               "bins"
               + (f" ({', '.join(map(str, outside))} per feature)" if len(outside) > 1 else "")
               + f", against about {total * (100 - BAND[1] + BAND[0]) / 100:.1f} expected by "
                 "chance if the model were right.")
    legend_in = 0.15 + 0.2 * int(np.ceil(len(labels) / ncol))
    return save(fig, out_dir, f"ppc_{dataset}", caption,
                rect=(0, 0, 1, 1 - legend_in / height))
