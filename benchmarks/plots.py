"""Figures of a benchmark run (matplotlib, Agg): speed-ups per case, log-log scaling sweeps,
peak memory. Each function takes the pandas tables run_benchmarks writes and a path."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"em_reference": "#1f77b4", "sklearn": "#ff7f0e", "sklearn_1t": "#d62728",
          "gmmx": "#2ca02c"}


def _case_label(row):
    return f"({row['n']:,}, {row['d']}, {row['k']})\n{row['covariance_type']}"


def speedups(cases, path):
    """Per case: em_reference's speed-up per iteration over the faster scikit-learn
    configuration (float64) and over gmmx (float32), measured in the same job."""
    fig, ax = plt.subplots(figsize=(10, 4.2))
    keys = cases[["n", "d", "k", "covariance_type"]].drop_duplicates()
    labels, bars = [], {"vs scikit-learn, float64": [], "vs gmmx, float32": []}
    for _, key in keys.iterrows():
        sel = cases[(cases.n == key.n) & (cases.d == key.d) & (cases.k == key.k)
                    & (cases.covariance_type == key.covariance_type)]
        labels.append(_case_label(key))

        def ratio(dtype, others, sel=sel):
            s = sel[sel.dtype == dtype].groupby("contender")["s_per_iter"].min()
            base = [s[o] for o in others if o in s]
            if "em_reference" in s and base and s["em_reference"] > 0:
                return min(base) / s["em_reference"]
            return np.nan

        bars["vs scikit-learn, float64"].append(ratio("float64", ("sklearn", "sklearn_1t")))
        bars["vs gmmx, float32"].append(ratio("float32", ("gmmx",)))
    x = np.arange(len(labels))
    width = 0.38
    for i, (name, vals) in enumerate(bars.items()):
        pos = x + (i - 0.5) * width
        ax.bar(pos, vals, width, label=name)
        for p, v in zip(pos, vals):
            if np.isfinite(v):
                ax.text(p, v * 1.05, f"{v:.0f}x" if v >= 10 else f"{v:.1f}x", ha="center",
                        va="bottom", fontsize=7)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(5.0, color="gray", ls="--", lw=0.8, label="5x target")
    ax.axhline(10.0, color="gray", ls=":", lw=0.8, label="10x target (100k, 8, 8 full)")
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("em_reference speed-up per EM iteration")
    ax.set_title("em_reference vs peers: same data, same start, same iterations (medians)",
                 fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scaling(sweeps, path):
    """Seconds per iteration against N, K and D (log-log), one panel per sweep."""
    names = [s for s in ("N", "K", "D") if s in set(sweeps["sweep"])]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.2 * max(len(names), 1), 3.8),
                             squeeze=False)
    column = {"N": "n", "K": "k", "D": "d"}
    for ax, name in zip(axes[0], names):
        sel = sweeps[sweeps.sweep == name]
        fixed = [f"{c.upper() if c != 'n' else 'N'}={sel[c].iloc[0]:,}"
                 for c in ("n", "d", "k") if c != column[name]]
        for contender, grp in sel.groupby("contender"):
            grp = grp.sort_values(column[name])
            ax.loglog(grp[column[name]], grp["s_per_iter"], "o-", label=contender,
                      color=COLORS.get(contender))
        # label the measured values only: log axes' minor labels overlap on short ranges
        ticks = sorted(set(sel[column[name]]))
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel(name)
        ax.set_ylabel("seconds per EM iteration")
        ax.set_title(f"sweep in {name} ({', '.join(fixed)}, full, float64)", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def memory(mem, path):
    """Peak RSS of one fit in a fresh process, and what the fit added to it."""
    fig, ax = plt.subplots(figsize=(10, 4))
    mem = mem.copy()
    mem["label"] = [f"({r.n:,}, {r.d}, {r.k}) {r.covariance_type}" for r in mem.itertuples()]
    mem["who"] = mem["contender"] + " " + mem["dtype"]
    table = mem.pivot_table(index="label", columns="who", values="fit_added_mb", sort=False)
    table.plot.bar(ax=ax, logy=bool((table > 0).any().any()), rot=0, fontsize=8)
    ax.set_ylabel("MiB added by the fit (peak RSS - RSS before)")
    ax.set_title("memory of one fit (fresh process; data and imports excluded)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
