"""What each method's fits cost: compile time beside run time, summed over its finished cells,
on a log axis (EM's wall time is mostly compilation; scikit-learn compiles nothing)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import ok_rows
from .style import method_color, new_figure, save, sort_methods

NOT_MEASURED = "not measured"
COMPILE_STYLE = {"alpha": 0.45, "hatch": "///", "edgecolor": "white", "linewidth": 0}


def cost_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """Per method (index, in the style's order) over its finished cells: n_cells, compile
    (sum of compile_time over the cells that measured it; NaN when none did), n_compile
    (how many did), run (sum of run_time, seconds). None when the table has no times.

    A cell without a measured compile time has run_time = wall_time, so its run time holds
    whatever compiling it did; its compile time is left out, never counted as zero."""
    df = ok_rows(df)
    if df.empty or not {"compile_time", "run_time"} <= set(df.columns):
        return None
    df = df[np.isfinite(df["run_time"].astype(float))]
    if df.empty:
        return None
    compile_time = df["compile_time"].astype(float)
    measured = np.isfinite(compile_time)
    table = pd.DataFrame({
        "n_cells": df.groupby("method").size(),
        "compile": compile_time[measured].groupby(df["method"][measured]).sum(),
        "n_compile": measured.groupby(df["method"]).sum().astype(int),
        "run": df["run_time"].astype(float).groupby(df["method"]).sum(),
    })
    return table.loc[sort_methods(table.index)]


def whole_cell_share(df) -> str:
    """A sentence on the finished cells' whole time (fit, extra fits, scoring: cell_time) and
    the part of it JAX spent compiling (cell_compile_time); "" without those columns."""
    df = ok_rows(df)
    if df.empty or not {"cell_time", "cell_compile_time"} <= set(df.columns):
        return ""
    cell = df["cell_time"].astype(float)
    compiling = df["cell_compile_time"].astype(float)
    both = np.isfinite(cell) & np.isfinite(compiling)
    if not both.any() or cell[both].sum() <= 0:
        return ""
    total, spent = cell[both].sum(), compiling[both].sum()
    return (f" Whole cells (fit, extra fits, scoring; {int(both.sum())} cells): {total:.4g} s, "
            f"of which {spent:.4g} s ({100 * spent / total:.0f}%) JAX spent tracing, lowering "
            "and compiling (cell_compile_time).")


def draw_cost(ax, table: pd.DataFrame):
    """Two horizontal bars per method on a log axis: compile (hatched) above run (solid),
    each bar's length its total in seconds; a compile time that was not measured is written
    as such where its bar would be."""
    n = len(table)
    y = np.arange(n)[::-1].astype(float)
    values = table[["compile", "run"]].to_numpy(dtype=float)
    positive = values[np.isfinite(values) & (values > 0)]
    low = positive.min() / 4 if len(positive) else 1e-3
    for yi, (method, row) in zip(y, table.iterrows(), strict=True):
        color = method_color(method)
        if row["n_compile"] > 0:
            ax.barh(yi + 0.19, row["compile"], height=0.36, left=0, color=color,
                    gid=f"{method} compile", **COMPILE_STYLE)  # gid: names the bar
            ax.text(max(row["compile"], low), yi + 0.19, f" {row['compile']:.3g} s",
                    va="center", fontsize=8)
        else:
            ax.text(low, yi + 0.19, f" compile {NOT_MEASURED}", va="center", fontsize=8,
                    color="0.35", style="italic")
        ax.barh(yi - 0.19, row["run"], height=0.36, left=0, color=color,
                gid=f"{method} run")
        ax.text(max(row["run"], low), yi - 0.19, f" {row['run']:.3g} s", va="center",
                fontsize=8)
    ax.set_xscale("log")
    high = positive.max() if len(positive) else 1.0
    ax.set_xlim(low, high * 12)  # room for the value written after the longest bar
    labels = [f"{m} ({int(r['n_cells'])})" if r["n_compile"] in (0, r["n_cells"]) else
              f"{m} ({int(r['n_cells'])}; compile in {int(r['n_compile'])})"
              for m, r in table.iterrows()]
    ax.set_yticks(y, labels)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel("seconds, summed over finished cells (log scale)")
    ax.grid(axis="y", visible=False)


def cost_figure(df, out_dir):
    table = cost_table(df)
    if table is None:
        return None
    height = 1.1 + 0.42 * len(table)
    fig, axes = new_figure(1, 1, width=7.0, height=height)
    ax = axes[0, 0]
    draw_cost(ax, table)
    from matplotlib.patches import Patch

    fig.legend([Patch(facecolor="0.4", **COMPILE_STYLE), Patch(facecolor="0.4")],
               ["compile", "run (wall − compile)"], loc="upper center",
               ncol=2)
    unmeasured = [m for m, r in table.iterrows() if r["n_compile"] < r["n_cells"]]
    nothing = [m for m, r in table.iterrows() if r["n_compile"] > 0 and r["compile"] == 0]
    failed = int((df["status"] != "ok").sum()) if "status" in df else 0
    caption = ("Cost per method: compile time (hatched) and run time (solid) in seconds, each "
               "summed over the method's finished cells (their number in brackets), log axis. "
               "run_time = wall_time − compile_time."
               + (f" Compile time not measured by {', '.join(unmeasured)} (where not measured "
                  "it is written so, not drawn as zero; such a cell's run time is its whole "
                  "wall time, any compiling included)." if unmeasured else "")
               + (f" Compile time 0 s (nothing compiled; written, as a log axis has no zero): "
                  f"{', '.join(nothing)}." if nothing else "")
               + (f" {failed} failed cell(s) left out." if failed else "")
               + whole_cell_share(df))
    return save(fig, out_dir, "cost", caption, rect=(0, 0, 1, 1 - 0.3 / height))
