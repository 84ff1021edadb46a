"""Convergence per iteration, each method against a reference it can be judged by: EM's gap
to its own final objective, the SVI point estimates' gap to EM's optimum of the same
objective, and VI's running ELBO estimate beside its final many-sample estimate and noise."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from .data import k_text, trace_of
from .style import fit_status, is_certified, line_style, method_color, new_figure, save, \
    sort_methods, symlog_y, uncertified_note

EM_METHODS = ("em", "map_em", "hard_em")
FLOOR = 1e-10  # nats: gaps below (rounding of a converged objective) are drawn at the floor
SMOOTH = 25  # steps in VI's running mean
TIE = 1e-8  # relative gap within which an SVI estimate is at EM's optimum (float64 rounding)
# the EM method whose optimum judges an SVI point estimate of the same objective, and the
# table column holding that optimum
REFERENCES = {"log_likelihood": ("em", "log_likelihood_train"),
              "log_joint": ("map_em", "log_joint")}
EM_OBJECTIVES = {"log_likelihood": "log p(X | θ)", "log_joint": "log p(X, θ)",
                 "classification_log_likelihood": "Σ max_k log p(x, z=k | θ)"}


def em_gaps(trace):
    """(T,) objective per EM iteration -> (T - 1,) its final value minus each earlier one."""
    trace = np.asarray(trace, dtype=float)
    return trace[-1] - trace[:-1]


def first_decrease(trace, tol=1e-9):
    """The first iteration at which ``trace`` (T,) fell by more than ``tol`` times its scale,
    or None when it never decreased."""
    trace = np.asarray(trace, dtype=float)
    drops = np.flatnonzero(np.diff(trace) < -tol * max(1.0, float(np.abs(trace).max())))
    return int(drops[0]) + 1 if drops.size else None


def reference_optimum(rows, objective_name):
    """(value, method) of the certified EM optimum of ``objective_name`` among ``rows`` (one
    cell group), or None when the group has none."""
    method, column = REFERENCES.get(objective_name, (None, None))
    if method is None or column not in rows:
        return None
    ref = rows[rows["method"] == method]
    if ref.empty or not is_certified(ref.iloc[0]) or not np.isfinite(ref.iloc[0][column]):
        return None
    return float(ref.iloc[0][column]), method


def running_mean(trace, window=SMOOTH):
    """(T,) one-sample estimates -> (T - window + 1,) their running mean over ``window``."""
    return np.convolve(np.asarray(trace, dtype=float), np.ones(window) / window, mode="valid")


def running_mean_noise(trace, window=SMOOTH):
    """The standard deviation of a ``window``-step mean of the last fifth of ``trace`` (T,),
    read from its scatter there (the estimates' noise once the optimiser has settled)."""
    tail = np.asarray(trace, dtype=float)[-max(len(trace) // 5, 2):]
    return float(np.std(tail, ddof=1) / np.sqrt(window))


def _finite_traces(store, rows):
    """(method, row, trace (T,) without its non-finite entries) per method of ``rows``, in
    the methods' fixed order."""
    for method in sort_methods(rows["method"]):
        row = rows[rows["method"] == method].iloc[0]
        t = trace_of(store, row["key"])
        yield method, row, t[np.isfinite(t)]


def _label(method, row, detail=""):
    """A legend entry: "method: detail", and the fit status on a line of its own when the fit
    is not certified (three legends side by side must each stay as narrow as their panel)."""
    text = f"{method}: {detail}" if detail else method
    return text if is_certified(row) else f"{text}\n({fit_status(row)})"


def _legend_below(ax):
    if ax.get_legend_handles_labels()[0]:
        # below the panel: inside, it hides the traces it explains
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), fontsize=8)


def _em_panel(ax, store, em_rows):
    """Gap to the final objective per EM iteration; returns the sentences on decreases."""
    notes = []
    for method, row, t in _finite_traces(store, em_rows):
        if t.size < 2:
            continue
        objective = EM_OBJECTIVES.get(row["objective_name"], "")
        ax.plot(np.arange(t.size - 1), np.maximum(em_gaps(t), FLOOR), marker=".",
                color=method_color(method), label=_label(method, row, objective),
                **line_style(row))
        drop = first_decrease(t)
        if drop is not None:
            notes.append(f"{method}'s objective decreased at iteration {drop}")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("final objective − objective (nats)")
    ax.set_title("EM")
    _legend_below(ax)
    return notes


def _point_panel(ax, store, rows, point_rows):
    """Gap of each SVI point estimate's objective to EM's optimum of the same objective;
    returns "method: final gap" per method drawn."""
    endings = []
    for method, row, t in _finite_traces(store, point_rows):
        if not t.size:
            continue
        ref = reference_optimum(rows, row["objective_name"])
        if ref is None:
            value, against = float(t.max()), "its own best"
        else:
            value, against = ref
        gap = value - t
        final = float(gap[-1])
        if abs(final) <= TIE * max(1.0, abs(value)):
            ends = f"at {against} ({abs(final):.1g})"
        else:
            ends = f"{abs(final):.2g} {'below' if final > 0 else 'above'} {against}"
        ax.plot(np.arange(1, t.size + 1), np.maximum(gap, FLOOR), color=method_color(method),
                linewidth=1.2, label=_label(method, row, ends), **line_style(row))
        endings.append(f"{method} {ends}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("EM's optimum − objective (nats)")
    ax.set_title("MAP / MLE by SVI")
    _legend_below(ax)
    return endings


def _vi_panel(ax, store, vi_rows):
    """VI's running-mean ELBO estimate minus its final many-sample estimate, with the band of
    the running mean's noise; returns that noise (nats, the largest over the methods)."""
    noise = 0.0
    for method, row, t in _finite_traces(store, vi_rows):
        if t.size <= 2 * SMOOTH:
            continue
        final = float(row["elbo_vi"]) if np.isfinite(row.get("elbo_vi", np.nan)) else float(
            np.mean(t[-len(t) // 5:]))
        steps = np.arange(1, t.size + 1)
        color = method_color(method)
        ax.plot(steps, t - final, color=color, linewidth=0.5, alpha=0.25)
        ax.plot(steps[SMOOTH - 1:], running_mean(t) - final, color=color, linewidth=1.2,
                label=_label(method, row), **line_style(row))
        noise = max(noise, running_mean_noise(t))
    if noise > 0:
        ax.axhspan(-2 * noise, 2 * noise, color="0.85", zorder=0, label=f"±{2 * noise:.2g} nats")
        ax.set_xscale("log")
        low = max(min(line.get_ydata().min() for line in ax.get_lines()), -1e4)
        linthresh = 10.0 ** np.ceil(np.log10(2 * noise))  # the band sits in the linear part
        symlog_y(ax, linthresh=linthresh)
        ax.set_ylim(1.2 * min(low, -linthresh), 3 * linthresh)
        decades = np.arange(int(np.log10(max(-low, linthresh) / linthresh)) + 1)
        ax.set_yticks(sorted({0.0, linthresh, *(-linthresh * 10.0 ** decades)}))
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("ELBO − final ELBO (nats)")
    ax.set_title("VI by SVI")
    _legend_below(ax)
    return noise


def traces_figure(store, dataset, rows, out_dir):
    em_rows = rows[rows["method"].isin(EM_METHODS)]
    svi = rows[~rows["method"].isin(EM_METHODS + ("sklearn_em",))]
    point_rows = svi[svi["objective_name"].isin(list(REFERENCES))]
    vi_rows = svi[svi["objective_name"] == "elbo_vi"]
    panels = [p for p, r in (("em", em_rows), ("point", point_rows), ("vi", vi_rows))
              if not r.empty]
    if not panels:
        return None
    fig, axes = new_figure(1, len(panels), width=7.0, height=3.6)
    notes, endings, noise = [], [], 0.0
    for ax, panel in zip(axes[0], panels):
        if panel == "em":
            notes = _em_panel(ax, store, em_rows)
        elif panel == "point":
            endings = _point_panel(ax, store, rows, point_rows)
        else:
            noise = _vi_panel(ax, store, vi_rows)
    k = k_text(rows.iloc[0])
    parts = []
    if "em" in panels:
        parts.append("EM's objective per iteration (log-likelihood for em, log joint for "
                     "map_em, hard_em's classification log-likelihood) as its gap to the final "
                     "value, on a log axis: "
                     + ("; ".join(notes) + " (not monotone)" if notes
                        else "it never decreased")
                     + f"; gaps below {FLOOR:g} nats are drawn at that floor")
    if "point" in panels:
        parts.append("the objective NumPyro's optimiser maximises per step (log joint for "
                     "MAP, log-likelihood for MLE) as its gap to the certified EM optimum of "
                     "the same objective in the same cell (map_em, em), so a plateau above "
                     "the floor is a gap that SVI did not close (final gaps in nats, 'at' "
                     f"within {TIE:g} relative: " + ", ".join(endings) + ")")
    if "vi" in panels:
        parts.append(f"VI's one-sample ELBO estimates (faint) and their {SMOOTH}-step mean "
                     "(bold) minus the final many-sample ELBO estimate; the grey band is ±2 "
                     f"standard deviations of that mean (±{2 * noise:.2g} nats, from its "
                     "scatter over the last fifth of the steps): inside it, differences are noise")
    caption = f"{dataset} ({k}): " + "; ".join(
        f"({chr(ord('a') + i)}) {p}" for i, p in enumerate(parts)) + "." + uncertified_note(rows)
    # the panels keep 3.2 in (their y labels run 2 in); the legends below get what they need
    lines = max((sum(1 + t.get_text().count("\n") for t in ax.get_legend().get_texts())
                 for ax in axes[0] if ax.get_legend() is not None), default=0)
    fig.set_figheight(3.2 + 0.15 * lines)
    return save(fig, out_dir, f"traces_{dataset}", caption)
