"""EM's decomposition per iteration, PRML fig. 9.14 made numeric: for one dataset per model,
what each iteration's M-step and E-step add to log p(X | theta), from the `em` rows'
``em_decomposition`` column (experiments/methods/em_methods.py)."""

from __future__ import annotations

import json

import numpy as np

from .data import k_text
from .style import new_figure, save

STEPS = (("M-step: ELBO(q_t, θ_t+1) − log p(X | θ_t)", "o", "#0072B2"),
         ("E-step: KL(q_t ‖ p(Z | X, θ_t+1)) it closes", "s", "#D55E00"))


def decomposition_rows(ok):
    """One `em` row per model that has a decomposition: the first dataset (by name) at its
    smallest K >= 2, seed 0 where there is one. A list of (row, decomposition dict)."""
    if "em_decomposition" not in ok or "method" not in ok:
        return []
    rows = ok[(ok["method"] == "em") & ok["em_decomposition"].map(lambda v: isinstance(v, str))
              & (ok["n_components"].fillna(0) >= 2)]
    chosen = []
    for _, group in rows.sort_values(["dataset", "n_components", "seed"]).groupby(
            "model", sort=True):
        row = group.iloc[0]
        chosen.append((row, json.loads(row["em_decomposition"])))
    return chosen


def decomposition_figure(ok, out_dir):
    chosen = decomposition_rows(ok)
    if not chosen:
        return None
    n = len(chosen)
    fig, axes = new_figure(1, n, width=3.5 * n, height=3.2)
    notes = []
    for ax, (row, d) in zip(axes.flat, chosen, strict=False):
        ll, elbo, kl = (np.asarray(d[k], float) for k in ("log_likelihood", "elbo", "kl"))
        t = np.arange(len(elbo))
        m_gain = elbo - ll[:-1]
        for values, (label, marker, color) in zip((m_gain, kl), STEPS, strict=True):
            shown = values > 0  # a log axis: an exact zero (converged) is not drawn
            ax.plot(t[shown], values[shown], marker=marker, color=color, label=label,
                    markersize=4, linewidth=1)
        ax.set_yscale("log")
        ax.set_xlabel("EM iteration t")
        ax.set_ylabel("nats gained")
        ax.set_xticks(t[:: max(1, len(t) // 6)])
        ax.set_title(f"{row['dataset']} ({k_text(row)})\n{row['model']}")
        notes.append(f"{row['dataset']} ({row['model']}, {k_text(row)}): iteration 0 gains "
                     f"{m_gain[0]:.3g} nats in the M-step and {kl[0]:.3g} in the E-step; "
                     f"log p(X | θ) goes from {ll[0]:.2f} to {ll[-1]:.2f} in {len(elbo)} "
                     "iterations")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=1)
    height = fig.get_figheight()
    caption = ("EM's decomposition per iteration (PRML sec. 9.4, fig. 9.14), plain EM (no "
               "prior, no reg_covar) from the shared start. Each iteration raises "
               "log p(X | θ) = ELBO(q, θ) + KL(q ‖ p(Z | X, θ)) twice: the M-step raises the "
               "ELBO at fixed q_t = p(Z | X, θ_t) (circles), which opens a KL between q_t and "
               "the new posterior; the next E-step sets q_t+1 to that posterior and closes "
               "it (squares): log p(X | θ_t+1) − log p(X | θ_t) = the two summed. Log axis. "
               + "; ".join(notes) + ".")
    return save(fig, out_dir, "em_decomposition", caption, rect=(0, 0, 1, 1 - 0.55 / height))
