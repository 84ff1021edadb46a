"""Objective per iteration: EM's monotone objective beside the SVI loss of MAP/MLE/VI."""

from __future__ import annotations

import numpy as np

from .data import k_text, trace_of
from .style import line_style, method_color, new_figure, save, sort_methods, status_label, \
    uncertified_note

FLOOR = 1e-3  # nats: differences below are drawn at the floor
SMOOTH = 25

EM_OBJECTIVES = {"log_likelihood": "log p(X | θ)", "log_joint": "log p(X, θ)",
                 "classification_log_likelihood": "Σ max_k log p(x, z=k | θ)"}


def traces_figure(store, dataset, rows, out_dir):
    em_rows = rows[rows["method"].isin(["em", "map_em", "hard_em"])]
    svi_rows = rows[rows["objective_name"].isin(["log_joint", "log_likelihood", "elbo_vi"])
                    & ~rows["method"].isin(["em", "map_em", "hard_em", "sklearn_em"])]
    if em_rows.empty and svi_rows.empty:
        return None
    fig, axes = new_figure(1, 2, width=8.0, height=4.2)
    ax = axes[0, 0]
    for method in sort_methods(em_rows["method"]):
        row = em_rows[em_rows["method"] == method].iloc[0]
        t = trace_of(store, row["key"])
        if t.size:
            ax.plot(np.arange(len(t)), t, marker=".", color=method_color(method),
                    label=f"{status_label(method, row)}: "
                          f"{EM_OBJECTIVES.get(row['objective_name'], '')}", **line_style(row))
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("objective (nats)")
    ax.set_title("EM: objective never decreases")
    if ax.get_legend_handles_labels()[0]:
        # below the panel: inside, it hides the traces it explains
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8)
    ax = axes[0, 1]
    for method in sort_methods(svi_rows["method"]):
        row = svi_rows[svi_rows["method"] == method].iloc[0]
        t = trace_of(store, row["key"])
        t = t[np.isfinite(t)]
        if t.size:
            steps = np.arange(1, len(t) + 1)
            excess = np.maximum(t.max() - t, FLOOR)  # loss minus its smallest value
            color = method_color(method)
            label = f"{status_label(method, row)}: −{row['objective_name']}"
            if row["objective_name"] == "elbo_vi" and len(t) > 2 * SMOOTH:
                ax.plot(steps, excess, color=color, linewidth=0.5, alpha=0.3)
                smooth = np.convolve(t, np.ones(SMOOTH) / SMOOTH, mode="valid")
                ax.plot(steps[SMOOTH - 1:], np.maximum(t.max() - smooth, FLOOR), color=color,
                        linewidth=1.2, label=label + f" ({SMOOTH}-step mean)",
                        **line_style(row))
            else:
                ax.plot(steps, excess, color=color, linewidth=1.2, label=label,
                        **line_style(row))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom=FLOOR / 2)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("SVI loss − its minimum (nats)")
    ax.set_title("SVI: loss = −objective, noisy for VI")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8)
    k = k_text(rows.iloc[0])
    caption = (f"{dataset} ({k}): left, EM's objective per iteration (log-likelihood for em "
               "and hard_em's classification log-likelihood, log joint for map_em), monotone by "
               "construction; right, the loss NumPyro's optimiser minimises per step (−log "
               "joint for MAP, −log-likelihood for MLE, a one-sample −ELBO for VI) minus its "
               "smallest value (floored at 10⁻³ nats), on log axes; VI's one-sample estimates "
               "are drawn faint, with their 25-step running mean." + uncertified_note(rows))
    return save(fig, out_dir, f"traces_{dataset}", caption)
