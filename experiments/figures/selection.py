"""Model selection: BIC, AIC and ICL against the number of components K."""

from __future__ import annotations

import numpy as np

from .data import ok_rows
from .style import UNCERTIFIED_MARKER, fit_status, is_certified, new_figure, save

CRITERIA = (("bic", "BIC", "C0"), ("aic", "AIC", "C1"), ("icl", "ICL", "C2"))


def selection_figure(df, out_dir, method="em"):
    df = ok_rows(df)
    df = df[df["method"] == method]
    panels = []
    for (dataset, _model, ct), rows in df.groupby(["dataset", "model", "covariance_type"]):
        rows = rows[rows["seed"] == rows["seed"].min()].sort_values("n_components")
        if rows["n_components"].nunique() >= 3:
            panels.append((dataset, ct, rows))
    if not panels:
        return None
    ncols = min(3, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = new_figure(nrows, ncols, width=3.6 * ncols, height=2.9 * nrows)
    for ax, (dataset, ct, rows) in zip(axes.flat, panels, strict=False):
        k = rows["n_components"].to_numpy()
        for col, label, color in CRITERIA:
            v = rows[col].to_numpy(dtype=float)
            ax.plot(k, v, marker="o", color=color, label=label)
            best = int(np.nanargmin(v))
            ax.plot(k[best], v[best], marker="*", markersize=12, color=color)
            flagged = ~rows.apply(is_certified, axis=1).to_numpy()
            if flagged.any():  # a K whose fit is not certified: a hollow ring on its point
                ax.plot(k[flagged], v[flagged], "o", markersize=9, color=color,
                        **UNCERTIFIED_MARKER)
        ax.set_xticks(k)
        ax.set_xlabel("number of components K")
        ax.set_ylabel("criterion (2 × nats; lower is better)")
        ax.set_title(f"{dataset}" + (f" ({ct})" if ct else ""))
        ax.legend()
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    caption = (f"Model selection with {method}: BIC = −2 log L + p log N, AIC = −2 log L + 2p, "
               "ICL = BIC − 2 Σ_n max_k log p(z_n = k | x_n) against K; stars mark each "
               "criterion's choice."
               + _flag_note(panels))
    return save(fig, out_dir, f"model_selection_{method}", caption)


def _flag_note(panels) -> str:
    flagged = [f"{dataset} K={int(r['n_components'])} ({fit_status(r)})"
               for dataset, _, rows in panels for _, r in rows.iterrows() if not is_certified(r)]
    return (" Hollow rings: fits that are not certified: " + ", ".join(flagged) + "."
            if flagged else "")
