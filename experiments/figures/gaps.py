"""The KL gaps: every bound's distance below the evidence, log p(X) - ELBO, per problem and
method, ranked, on a linear axis with its standard error and beside each fit's cost
(comparisons.kl_gaps computes them)."""

from __future__ import annotations

import math

import numpy as np

from .. import comparisons
from .data import k_text
from .style import is_certified, marker_style, method_color, new_figure, save, status_label

BAD_COLOR = "#d62728"


def _panels(gaps):
    """[(title, [gap dicts, the smallest kl_gap first])] one per problem and prior."""
    panels: dict[tuple, list] = {}
    for d in gaps:
        key = (d["dataset"], str(d["n_components"]), d["covariance_type"], str(d["seed"]),
               str(d["prior"]))
        panels.setdefault(key, []).append(d)
    out = []
    for (dataset, *_), group in sorted(panels.items()):
        first = group[0]
        where = ", ".join(x for x in (k_text({"n_components": first["n_components"],
                                              "model": ""}), first["covariance_type"],
                                      f"seed {first['seed']}") if x)
        out.append((f"{dataset} ({where})", sorted(group, key=lambda d: d["kl_gap"])))
    return out


def _label(d) -> str:
    t = d["run_time"]  # two significant digits below a second (CAVI's take milliseconds)
    cost = "? s" if not np.isfinite(t) else f"{t:.2g} s" if t < 1 else f"{t:.1f} s"
    return f"{status_label(d['method'], d)} {d['bound_over']} · {cost}"


def gaps_figure(rows, out_dir):
    """kl_gap ± 1 s.e. per bound (rows: the table's finished rows); None without any."""
    gaps = comparisons.kl_gaps(rows.to_dict("records"))
    if not gaps:
        return None
    panels = _panels(gaps)
    # one column at the printed width: the method labels are long, and each panel's axis
    # is its own (gaps of different problems differ by an order of magnitude)
    sizes = [len(g) * 0.3 + 0.75 for _, g in panels]
    fig, axes = new_figure(len(panels), 1, width=7.0, height=sum(sizes) + 0.4,
                           gridspec_kw={"height_ratios": sizes})
    for i_panel, (ax, (title, group)) in enumerate(zip(axes.flat, panels, strict=True)):
        for i, d in enumerate(group):
            y = len(group) - 1 - i
            bad = d["bound_exceeds_evidence"]
            color = BAD_COLOR if bad else method_color(d["method"])
            se = d["kl_gap_se"] if np.isfinite(d["kl_gap_se"]) else 0.0
            ax.errorbar(d["kl_gap"], y, xerr=se, fmt="o", capsize=3, markersize=5,
                        color=color, **marker_style(d))
            if np.isfinite(d["renyi_gap"]):  # the bound it was trained on, at the same q
                ax.errorbar(d["renyi_gap"], y, xerr=np.nan_to_num(d["renyi_gap_se"]), fmt="D",
                            capsize=3, markersize=5, fillstyle="none", color=color)
            if bad:
                ax.annotate("bound exceeds evidence", (d["kl_gap"], y), xytext=(4, 5),
                            textcoords="offset points", fontsize=8, color=BAD_COLOR)
        ends = [(d[c] - np.nan_to_num(d[c + "_se"]), d[c] + np.nan_to_num(d[c + "_se"]))
                for d in group for c in ("kl_gap", "renyi_gap") if np.isfinite(d[c])]
        low = min(0.0, min(lo for lo, _ in ends))
        high = max(hi for _, hi in ends)
        ax.axvline(0.0, color="black", linewidth=0.8)
        k = group[0]["n_components"]
        if k is not None and k == k and k > 1:
            # a one-mode q misses the other K! - 1 relabellings the evidence integrates
            logk = math.lgamma(int(k) + 1)
            ax.axvline(logk, color="0.4", linestyle=":", linewidth=1.0)
            ax.annotate(f"log {int(k)}!", (logk, len(group) - 0.45), fontsize=8,
                        color="0.4", ha="left", xytext=(2, 0), textcoords="offset points")
            high = max(high, logk)
        pad = 0.08 * max(high - low, 1e-3)
        ax.set_xlim(low - pad, high + pad)
        ax.axvspan(low - pad, 0.0, color=BAD_COLOR, alpha=0.07, linewidth=0)
        ax.set_yticks(np.arange(len(group))[::-1],
                      [_label(d) for d in group])
        ax.set_ylim(-0.7, len(group) - 0.3)
        if i_panel == len(panels) - 1:
            ax.set_xlabel("kl_gap = log p(X) − ELBO (nats), each panel on its own axis")
        ax.set_title(title, loc="left")
        ax.grid(axis="y", visible=False)
    bad = [d for d in gaps if d["bound_exceeds_evidence"]]
    uncertified = [d for d in gaps if not is_certified(d)]
    caption = ("KL gap of every variational bound, ranked (the tightest q at the top, its run "
               "time after compilation beside its name): log p(X) (bridge sampling on NUTS "
               "draws) minus the ELBO, in nats on a linear axis, with ±1 standard error (the "
               "evidence's and the bound's Monte-Carlo errors combined; CAVI's bound is "
               "exact). (z, θ): CAVI's mean-field bound over assignments and parameters; θ: "
               "NumPyro's bounds over the parameters with z summed out. A gap is the KL "
               "divergence of the bound's q from the exact posterior and cannot be negative: "
               "left of the zero line (shaded) a bound exceeds the evidence, a bug. Dotted: "
               "log K!, about the least gap of a q with one mode when the K! relabellings of "
               "the posterior do not overlap. "
               + ("Open diamonds: the gap of the bound a q was trained on instead of the ELBO "
                  "(IWAE or Renyi, at the same q), tighter than its ELBO. "
                  if any(np.isfinite(d["renyi_gap"]) for d in gaps) else "")
               + ("Bound exceeds evidence by more than "
                  f"{comparisons.EXCEEDS_SE:g} s.e. (red): "
                  + ", ".join(f"{d['dataset']} {d['method']}" for d in bad) + ". "
                  if bad else "No bound exceeds its evidence by more than "
                  f"{comparisons.EXCEEDS_SE:g} s.e. ")
               + ("Hollow markers: bounds whose fit is not certified ("
                  + ", ".join(f"{d['dataset']} {d['method']} ({d['fit_status']})"
                              for d in uncertified) + ")." if uncertified else ""))
    return save(fig, out_dir, "kl_gaps", caption.strip())
