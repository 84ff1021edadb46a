"""The ELBO comparison: every objective a method reports, on one axis per dataset, relative to
EM's log-likelihood, with what each one bounds written on the figure."""

from __future__ import annotations

import numpy as np

from .data import k_text
from .style import is_certified, marker_style, method_color, new_figure, save, sort_methods, \
    symlog_axis, uncertified_note

QUANTITIES = (
    ("log_likelihood_train", "o", "log p(X | θ̂)"),
    ("log_joint", "s", "log p(X, θ̂) (MAP objective)"),
    ("elbo_em", "D", "elbo_em ≤ log p(X | θ̂)"),
    ("elbo_vi", "^", "elbo_vi ≤ log p(X)"),
)
NOTE = ("elbo_em: EM's bound on the likelihood at its own θ̂ (tight after an E-step; below it "
        "for hard EM).\nelbo_vi: the VI bound on the evidence log p(X) = log ∫ p(X|θ)p(θ)dθ, "
        "which lies below max log p(X, θ) + const;\nlog_joint = log p(X|θ̂) + log p(θ̂) is "
        "what MAP maximises. The three are different quantities: compare within a row.")


PER_PAGE = 4  # datasets per figure: 2 x 2 panels fill a page at 7 in wide
ROW_IN = 0.17  # inches per method row: its 8 pt label and the four markers' offsets


def elbo_figure(groups, out_dir):
    """The comparison in figures of at most PER_PAGE datasets: "elbo_comparison", then
    "elbo_comparison_2", ... (one panel per dataset, one row per method)."""
    groups = [(d, r) for d, r in groups if {"em"} & set(r["method"])]
    pages = [groups[i:i + PER_PAGE] for i in range(0, len(groups), PER_PAGE)]
    return [_elbo_page(page, out_dir, "elbo_comparison" + (f"_{n}" if n > 1 else ""),
                       n, len(pages)) for n, page in enumerate(pages, start=1)]


def _elbo_page(groups, out_dir, stem, number, n_pages):
    ncols = min(2, len(groups))
    nrows = int(np.ceil(len(groups) / ncols))
    most = max(r["method"].nunique() for _, r in groups)
    panel_in = ROW_IN * most + 1.2  # the rows, the tick labels, the x label, the title
    fig, axes = new_figure(nrows, ncols, width=7.0 if ncols > 1 else 3.5,
                           height=panel_in * nrows + 1.3)
    for ax, (dataset, rows) in zip(axes.flat, groups, strict=False):
        base = float(rows[rows["method"] == "em"]["log_likelihood_train"].iloc[0])
        methods = sort_methods(rows["method"].unique())
        for i, method in enumerate(methods):
            row = rows[rows["method"] == method].iloc[0]
            for j, (col, marker, _) in enumerate(QUANTITIES):
                value = row.get(col, np.nan)
                if value is None or not np.isfinite(value):
                    continue
                y = len(methods) - 1 - i + (j - 1.5) * 0.15
                ax.plot(value - base, y, marker, color=method_color(method), markersize=4,
                        **marker_style(row))
                if col == "elbo_vi" and np.isfinite(row.get("elbo_vi_se", np.nan)):
                    se = float(row["elbo_vi_se"])
                    ax.hlines(y, value - base - 2 * se, value - base + 2 * se,
                              color=method_color(method))
        ax.set_yticks(np.arange(len(methods))[::-1],
                      [m if is_certified(rows[rows["method"] == m].iloc[0]) else f"{m} (!)"
                       for m in methods])
        ax.set_ylim(-0.6, most - 0.4 if len(methods) == most else len(methods) - 0.4)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.margins(x=0.06)
        symlog_axis(ax, linthresh=1.0)
        ax.set_xlabel("nats, relative to EM's log p(X | θ̂)")
        ax.set_title(f"{dataset} ({k_text(rows.iloc[0])})")
        ax.grid(axis="y", visible=False)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    handles = [ax.plot([], [], m, color="0.3")[0] for _, m, _ in QUANTITIES]
    height = fig.get_figheight()
    fig.legend(handles, [lab for *_, lab in QUANTITIES], loc="upper center", ncol=2)
    fig.text(0.01, 0.005, NOTE, fontsize=8, va="bottom")
    part = f" (part {number} of {n_pages})" if n_pages > 1 else ""
    caption = (f"Objectives per method and dataset{part}, in nats relative to EM's maximised "
               "log-likelihood (symmetric log axis). Circles: training log-likelihood at the "
               "point estimate; squares: log joint (log-likelihood + log prior); diamonds: "
               "EM's ELBO (bounds log p(X | θ̂)); triangles with ±2 s.e.: VI's ELBO (bounds the "
               "evidence log p(X)). The bounds differ in what they bound, as written on the "
               "figure. Hollow markers and (!): fits that are not certified."
               + "".join(f" {d}:{uncertified_note(r)}" for d, r in groups
                         if uncertified_note(r)))
    return save(fig, out_dir, stem, caption, rect=(0, 0.75 / height, 1, 1 - 0.5 / height))
