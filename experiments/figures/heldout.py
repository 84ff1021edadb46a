"""Held-out log-likelihood per point and ARI per method, one dot per seed and the mean over the
certified seeds, for one problem (model, K, covariance type, data) of a dataset."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator
import pandas as pd

from .data import k_text
from .style import UNCERTIFIED_MARKER, fit_status, method_color, new_figure, save, \
    sort_methods

# the columns that make two rows the same problem (apart from the method and the seed)
SAME_PROBLEM = ("dataset", "model", "n_components", "covariance_type", "dataset_params",
                "model_options", "prior", "held_out_fraction")
PANELS = (("log_likelihood_test_per_point", "log_likelihood_test_per_point_se",
           "held-out log-likelihood per point (nats)"),
          ("ari", None, "adjusted Rand index (training data)"))


def _same(column: pd.Series, value) -> pd.Series:
    """column == value, with NaN equal to NaN (a model without K, a dataset's own split)."""
    if value is None or value != value:
        return column.isna()
    return column == value


def heldout_points(df: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``df`` (finished cells) of the problem of ``rows`` (a primary group, see
    data.primary_groups), every seed: one row per (method, seed) with method, seed,
    fit_status, certified and the PANELS' columns (NaN where the table lacks one)."""
    first = rows.iloc[0]
    keep = pd.Series(True, index=df.index)
    for col in SAME_PROBLEM:
        if col in df and col in rows:
            keep &= _same(df[col], first[col])
    sel = df[keep].sort_values(["method", "seed"], kind="stable")
    sel = sel.drop_duplicates(["method", "seed"])
    out = pd.DataFrame({"method": sel["method"], "seed": sel["seed"],
                        "fit_status": [fit_status(r) for _, r in sel.iterrows()]})
    out["certified"] = out["fit_status"] == "ok"
    for col, se, _ in PANELS:
        for c in (col, se):
            if c is not None:
                out[c] = sel[c].astype(float) if c in sel else np.nan
    return out.reset_index(drop=True)


def panels_of(points: pd.DataFrame) -> list[tuple]:
    """The PANELS with at least one finite value among ``points``."""
    return [p for p in PANELS if np.isfinite(points[p[0]].to_numpy(dtype=float)).any()]


def draw_heldout(ax, points: pd.DataFrame, col: str, se: str | None):
    """One row per method (style order, top down): a dot per seed at ``col`` (hollow when not
    certified; ±2 ``se`` where finite), seeds at fixed offsets; a vertical bar at the mean
    over the certified seeds with a finite value."""
    methods = sort_methods(points["method"].unique())
    seeds = sorted(points["seed"].unique())
    offsets = dict(zip(seeds, np.linspace(-0.25, 0.25, len(seeds)) if len(seeds) > 1
                       else [0.0], strict=True))
    for i, method in enumerate(methods):
        y0 = len(methods) - 1 - i
        color = method_color(method)
        mine = points[points["method"] == method]
        for _, p in mine.iterrows():
            x = float(p[col])
            if not np.isfinite(x):
                continue
            y = y0 + offsets[p["seed"]]
            if se is not None and np.isfinite(p[se]):
                ax.hlines(y, x - 2 * p[se], x + 2 * p[se], color=color, linewidth=0.9)
            ax.plot(x, y, "o", color=color, markersize=4.5,
                    **({} if p["certified"] else UNCERTIFIED_MARKER))
        good = mine[mine["certified"]][col].to_numpy(dtype=float)
        good = good[np.isfinite(good)]
        if len(good):
            ax.plot(good.mean(), y0, "|", color=color, markersize=16, markeredgewidth=2)
    ax.set_yticks(np.arange(len(methods))[::-1], methods)
    ax.set_ylim(-0.6, len(methods) - 0.4)
    ax.grid(axis="y", visible=False)


def heldout_figure(df, dataset, rows, out_dir):
    """df: the finished rows of the table; rows: the dataset's primary group."""
    points = heldout_points(df, rows)
    panels = panels_of(points)
    if not panels:
        return None
    n_methods = points["method"].nunique()
    fig, axes = new_figure(1, len(panels), width=7.0 if len(panels) > 1 else 3.5,
                           height=0.9 + 0.45 * n_methods, sharey=True)
    for ax, (col, se, label) in zip(axes.flat, panels, strict=True):
        draw_heldout(ax, points, col, se)
        ax.set_xlabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(4))  # four-decimal ARIs: fewer, wider ticks
    first = rows.iloc[0]
    ct = first.get("covariance_type") or ""
    seeds = sorted(points["seed"].unique())
    flagged = [f"{p.method} seed {p.seed} ({p.fit_status})"
               for p in points.itertuples() if not p.certified]
    ll = "log_likelihood_test_per_point"
    infinite = points[np.isinf(points[ll].to_numpy(dtype=float))]
    has_se = any(se is not None and np.isfinite(points[se]).any() for _, se, _ in panels)
    caption = (f"{dataset} ({k_text(first)}{', ' + ct if ct else ''}): "
               + " and ".join(label.split(" (")[0] for *_, label in panels)
               + f" per method, one dot per seed ({len(seeds)} seeds: "
               + ", ".join(map(str, seeds)) + ")"
               + ("; lines ±2 s.e. of the held-out mean over its points" if has_se else "")
               + "; vertical bar: the mean over the certified seeds."
               + (" Hollow dots: fits that are not certified (left out of the mean): "
                  + ", ".join(flagged) + "." if flagged else "")
               + (" Not drawn, held-out log-likelihood −inf (points of probability zero): "
                  + ", ".join(f"{p.method} seed {p.seed}" for p in infinite.itertuples())
                  + "." if len(infinite) else ""))
    return save(fig, out_dir, f"heldout_{dataset}", caption)
