"""Model selection: BIC, AIC and ICL against the number of components K, each relative to its
own minimum (their scales differ by thousands of nats: on one axis ICL flattens the others)."""

from __future__ import annotations

import numpy as np

from .data import ok_rows
from .style import UNCERTIFIED_MARKER, fit_status, is_certified, new_figure, save, symlog_y

# (column, label, colour, marker, horizontal offset: the choices' stars never cover each other)
CRITERIA = (("bic", "BIC", "#0072B2", "o", -0.12), ("aic", "AIC", "#D55E00", "s", 0.0),
            ("icl", "ICL", "#009E73", "^", 0.12))


def selection_panels(df, method):
    """[(dataset, covariance type, rows sorted by K)] of ``method``'s rows with >= 3 values of
    K, the first seed."""
    df = ok_rows(df)
    df = df[df["method"] == method]
    panels = []
    for (dataset, _model, ct), rows in df.groupby(["dataset", "model", "covariance_type"]):
        rows = rows[rows["seed"] == rows["seed"].min()].sort_values("n_components")
        if rows["n_components"].nunique() >= 3:
            panels.append((dataset, ct, rows))
    return panels


def chosen_k(rows, column) -> int | None:
    """The K whose certified fit minimises the criterion (an uncertified fit's value is not a
    maximised likelihood, so it chooses nothing; the summary follows the same rule); None when
    no fit is certified."""
    certified = rows[rows.apply(is_certified, axis=1)]
    values = certified[column].to_numpy(float)
    if not len(values) or np.all(np.isnan(values)):
        return None
    return int(certified["n_components"].to_numpy()[int(np.nanargmin(values))])


def selection_figure(df, out_dir, method="em"):
    panels = selection_panels(df, method)
    if not panels:
        return None
    ncols = min(3, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = new_figure(nrows, ncols, width=3.5 * ncols, height=3.0 * nrows + 0.5)
    choices = []
    for ax, (dataset, ct, rows) in zip(axes.flat, panels, strict=False):
        k = rows["n_components"].to_numpy()
        flagged = ~rows.apply(is_certified, axis=1).to_numpy()
        picked = []
        for col, label, color, marker, dx in CRITERIA:
            v = rows[col].to_numpy(dtype=float)
            best = chosen_k(rows, col)
            rel = v - (np.nanmin(v) if best is None else v[k == best][0])
            ax.plot(k + dx, rel, marker=marker, color=color, markersize=4, linewidth=1,
                    label=label if ax is axes.flat[0] else None)
            if best is not None:
                ax.plot(best + dx, 0.0, marker="*", markersize=11, color=color,
                        markeredgecolor="black", markeredgewidth=0.5)
            if flagged.any():  # a K whose fit is not certified: a hollow ring on its point
                ax.plot(k[flagged] + dx, rel[flagged], "o", markersize=8, color=color,
                        **UNCERTIFIED_MARKER)
            picked.append(f"{label} K={best}" if best is not None else f"{label}: none certified")
        symlog_y(ax)
        ax.set_xticks(k)
        ax.set_xlabel("number of components K")
        ax.set_ylabel("criterion − its chosen value (2 × nats)")
        ax.set_title(f"{dataset}" + (f" ({ct})" if ct else "") + "\n" + ", ".join(picked))
        choices.append(f"{dataset}: " + ", ".join(picked))
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.legend(loc="upper center", ncol=3)
    height = fig.get_figheight()
    caption = (f"Model selection with {method} (seed {int(panels[0][2]['seed'].iloc[0])}): "
               "BIC = −2 log L + p log N, AIC = −2 log L + 2p, ICL = BIC − 2 Σ_n max_k "
               "log p(z_n = k | x_n), each drawn relative to its own minimum over K (symmetric "
               "log axis; the three are offset sideways); stars mark each criterion's choice "
               "among the certified fits: "
               + "; ".join(choices) + "." + _flag_note(panels))
    return save(fig, out_dir, f"model_selection_{method}", caption,
                rect=(0, 0, 1, 1 - 0.35 / height))


def _flag_note(panels) -> str:
    flagged = [f"{dataset} K={int(r['n_components'])} ({fit_status(r)})"
               for dataset, _, rows in panels for _, r in rows.iterrows() if not is_certified(r)]
    return (" Hollow rings: fits that are not certified: " + ", ".join(flagged) + "."
            if flagged else "")
