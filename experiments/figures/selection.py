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
    """[(dataset, covariance type, rows sorted by seed and K)] of ``method``'s rows with >= 3
    values of K, every seed."""
    df = ok_rows(df)
    df = df[df["method"] == method]
    panels = []
    for (dataset, _model, ct), rows in df.groupby(["dataset", "model", "covariance_type"]):
        rows = rows.sort_values(["seed", "n_components"])
        if rows["n_components"].nunique() >= 3:
            panels.append((dataset, ct, rows))
    return panels


def choices_over_seeds(rows, column) -> dict:
    """{K: number of seeds whose certified fits choose it} for the criterion ``column``
    (a seed with no certified fit counts under None), most chosen first."""
    counts: dict = {}
    for _, seed_rows in rows.groupby("seed"):
        best = chosen_k(seed_rows, column)
        counts[best] = counts.get(best, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or 0)))


def choice_text(label, counts, compact=False) -> str:
    """ "BIC K=2" when every seed agrees, else "BIC K=2 (2 of 3 seeds), K=3 (1 of 3)", or
    with ``compact`` (a panel title) only the most chosen: "BIC K=2 (2/3)"."""
    n = sum(counts.values())
    if compact and len(counts) > 1:
        k, c = next(iter(counts.items()))
        return f"{label} " + (f"K={k}" if k is not None else "none certified") + f" ({c}/{n})"
    if len(counts) == 1:
        (k,) = counts
        return f"{label} K={k}" if k is not None else f"{label}: none certified"
    parts = [(f"K={k}" if k is not None else "none certified") + f" ({c} of {n}"
             + (" seeds)" if i == 0 else ")") for i, (k, c) in enumerate(counts.items())]
    return f"{label} " + ", ".join(parts)


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
    # three panels across a page (7 in), or one in a column: titles of two lines, the legend
    # in a strip below the panels
    fig, axes = new_figure(nrows, ncols, width=7.0 if ncols > 1 else 3.5,
                           height=2.7 * nrows + 0.4)
    choices = []
    for ax, (dataset, ct, rows) in zip(axes.flat, panels, strict=False):
        picked, titled = [], []
        # K at evenly spaced positions: 1, 2, 5, 10, 20, 50 stay readable
        grid = np.unique(rows["n_components"].to_numpy())
        at = lambda ks, grid=grid: np.searchsorted(grid, ks)  # noqa: E731
        for col, label, color, marker, dx in CRITERIA:
            # the first seed drawn bold with its choice starred, the others thin beneath it
            for i, (_, seed_rows) in enumerate(rows.groupby("seed", sort=True)):
                k = seed_rows["n_components"].to_numpy()
                flagged = ~seed_rows.apply(is_certified, axis=1).to_numpy()
                v = seed_rows[col].to_numpy(dtype=float)
                best = chosen_k(seed_rows, col)
                rel = v - (np.nanmin(v) if best is None else v[k == best][0])
                first = i == 0
                ax.plot(at(k) + dx, rel, marker=marker if first else None, color=color,
                        markersize=4, linewidth=1 if first else 0.6, alpha=1 if first else 0.5,
                        zorder=3 if first else 2,
                        label=label if ax is axes.flat[0] and first else None)
                if best is not None and first:
                    ax.plot(at(best) + dx, 0.0, marker="*", markersize=11, color=color,
                            markeredgecolor="black", markeredgewidth=0.5, zorder=4)
                if flagged.any():  # a K whose fit is not certified: a hollow ring on its point
                    ax.plot(at(k[flagged]) + dx, rel[flagged], "o", markersize=8, color=color,
                            **UNCERTIFIED_MARKER)
            counts = choices_over_seeds(rows, col)
            picked.append(choice_text(label, counts))
            titled.append(choice_text(label, counts, compact=True))
        k = np.unique(rows["n_components"].to_numpy())
        symlog_y(ax)
        ax.set_xticks(at(k), [str(int(v)) for v in k])
        ax.set_xlabel("number of components K")
        if ax in axes[:, 0]:
            ax.set_ylabel("criterion − chosen (2 × nats)")
        ax.set_title(f"{dataset}" + (f" ({ct})" if ct else ""), pad=13, fontsize=8.5)
        ax.text(0.5, 1.0, ", ".join(t.replace(" K=", " ") for t in titled),
                transform=ax.transAxes, ha="center", va="bottom", fontsize=8)
        choices.append(f"{dataset}: " + ", ".join(picked))
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.legend(loc="lower center", ncol=3)
    height = fig.get_figheight()
    seeds = sorted({int(x) for _, _, rows in panels for x in rows["seed"]})
    seed_text = (f"seed {seeds[0]}" if len(seeds) == 1 else
                 f"seeds {', '.join(map(str, seeds))}: the first bold with its choices "
                 "starred, the others thin")
    caption = (f"Model selection with {method} ({seed_text}): "
               "BIC = −2 log L + p log N, AIC = −2 log L + 2p, ICL = BIC − 2 Σ_n max_k "
               "log p(z_n = k | x_n), each drawn relative to its own minimum over K (symmetric "
               "log axis; the three are offset sideways); stars mark each criterion's choice "
               "among the certified fits, with the share of seeds choosing each K where they "
               "disagree: "
               + "; ".join(choices) + "." + _flag_note(panels))
    return save(fig, out_dir, f"model_selection_{method}", caption,
                rect=(0, 0.3 / height, 1, 1))


def _flag_note(panels) -> str:
    flagged = [f"{dataset} K={int(r['n_components'])} seed {int(r['seed'])} ({fit_status(r)})"
               for dataset, _, rows in panels for _, r in rows.iterrows() if not is_certified(r)]
    return (" Hollow rings: fits that are not certified: " + ", ".join(flagged) + "."
            if flagged else "")
