"""report.md and a self-contained report.html (figures embedded as base64) for a run folder.

The report has: the setup (grid, data with provenance, methods, machine), the summary of
findings computed from the rows (summary.py), a section defining each objective and how the
bounds relate, the results table per dataset, the certification section, the bounds against
the evidence (kl_gap per bound, a bound above the evidence flagged as a bug, CAVI's bound
against NumPyro's), failed cells with their errors, and every figure with its caption (and
the figures that failed to draw). Both files are rendered from one list of blocks, so they
always say the same thing.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import platform
from datetime import datetime, UTC
from pathlib import Path

import numpy as np
import pandas as pd

from . import comparisons, summary
from .datasets import DATASETS
from .figures import make_figures
from .figures.style import sort_methods
from .methods import METHODS
from .store import ResultStore, atomic_write_text

# the columns of every table; each model's own (ModelEntry.table_columns: its RMSEs and
# posterior sd, a local-latent model's estimates) go after ICL
TABLE_COLUMNS = (
    ("n_components", "K"), ("covariance_type", "cov"), ("method", "method"),
    ("log_likelihood_train", "log_likelihood train"),
    ("log_likelihood_test_per_point", "log_likelihood held-out / point"),
    ("log_joint", "log_joint"), ("elbo_em", "elbo_em"), ("elbo_vi", "elbo_vi"),
    ("log_evidence", "log_evidence"), ("kl_gap", "kl_gap"),
    ("ari", "ARI"), ("bic", "BIC"), ("aic", "AIC"), ("icl", "ICL"),
)
TABLE_TAIL = (("r_hat_max", "r_hat max"), ("gradient_norm", "gradient norm / sample"),
              ("n_steps", "steps"), ("fit_status", "fit status"),
              ("wall_time", "wall s"), ("compile_time", "compile s"), ("run_time", "run s"))

# the marker a row's method gets in every table when its fit is not certified
STATUS_MARKERS = {"failed_to_mix": "†", "not_converged": "‡"}
STATUS_NOTES = {
    "failed_to_mix": "NUTS chains that did not mix (split r_hat > 1.01, bulk or tail ESS < "
                     "400, or divergences after warm-up, at the draw cap): the posterior "
                     "summaries are not trustworthy, and the row is never used as a reference",
    "not_converged": "the fit stopped before its certificate held (EM or MAP: the gradient "
                     "norm per sample above its tolerance or the distance to the optimum "
                     "not small; VI: no ELBO plateau within its Monte-Carlo error): its "
                     "numbers are where it stopped, not an optimum, and it is never used as a "
                     "reference",
}
OTHER_MARKER = "*"


def status_marker(status) -> str:
    """'' for a certified row (fit_status "ok" or absent), else its table marker."""
    if status is None or status != status or status == "ok":
        return ""
    return STATUS_MARKERS.get(status, OTHER_MARKER)


def mark_methods(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(rows with each uncertified row's method marked, the footnote for the markers used;
    '' when every row is certified)."""
    if "fit_status" not in rows:
        return rows, ""
    marks = rows["fit_status"].map(status_marker)
    used = sorted({st for st in rows["fit_status"] if status_marker(st)}, key=str)
    if not used:
        return rows, ""
    note = " ".join(f"{status_marker(st)} {st}: {STATUS_NOTES.get(st, 'not certified')}."
                    for st in used)
    return rows.assign(method=rows["method"] + marks.map(lambda m: f" {m}" if m else "")), note


def zero_probability_notes(rows: pd.DataFrame) -> list[str]:
    """One paragraph per model whose point estimates give held-out points probability zero
    (column held_out_zero_probability > 0): which rows, how many points, and the model's
    explanation (ModelEntry.held_out_zero_note)."""
    from .models_registry import MODELS

    if "held_out_zero_probability" not in rows:
        return []
    notes = []
    for model, group in rows.groupby("model", sort=True):
        hit = group[group["held_out_zero_probability"].fillna(0) > 0]
        if not len(hit):
            continue
        which = "; ".join(f"{r.method} K={int(r.n_components)}: "
                          f"{int(r.held_out_zero_probability)} of {int(r.n_test)}"
                          for r in hit.itertuples())
        entry = MODELS.get(model)
        notes.append(f"Held-out log-likelihood -inf ({model}): {which} held-out points have "
                     "probability zero under the point estimate. "
                     + (entry.held_out_zero_note if entry is not None else ""))
    return notes


def table_columns(models) -> tuple:
    """The table's columns for rows of ``models`` (registered names; unknown ones add none)."""
    from .models_registry import MODELS

    extra = []
    for name in models:
        entry = MODELS.get(name)
        for col in (entry.table_columns if entry is not None else ()):
            if col not in extra and col not in TABLE_COLUMNS:
                extra.append(col)
    # the RMSEs first (vs truth, then vs EM), then the rest, each in registration order
    order = {"_vs_truth": 0, "_vs_em": 1}
    extra.sort(key=lambda c: next((v for k, v in order.items() if c[0].endswith(k)), 2))
    return TABLE_COLUMNS + tuple(extra) + TABLE_TAIL

def dataset_columns(rows) -> tuple:
    """The columns of one dataset's results table: table_columns of its models, with the seed
    after K, the covariance type and the method where the rows hold more than one seed (else
    rows differing only in their seed would look like repeats)."""
    columns = table_columns(rows["model"].unique())
    if rows["seed"].nunique() > 1:
        at = [c for c, _ in columns].index("method") + 1
        columns = columns[:at] + (("seed", "seed"),) + columns[at:]
    return columns


OBJECTIVES = """\
All log densities are in nats and summed over the data, with every constant included (the
log x! of the Poisson pmf too), so numbers from different methods are directly comparable
within one row of the same problem.

- **log_likelihood** = log p(X | θ̂) = Σ_n log Σ_k π_k p(x_n | θ_k), at a method's point
  estimate θ̂ (the posterior mean for VI, NUTS and scikit-learn's VB). `log_likelihood_train`
  is on the data the method saw, `log_likelihood_test_per_point` on the held-out share,
  divided by its size.
- **log_joint** = log p(X, θ̂) = log p(X | θ̂) + log p(θ̂), the cell's prior (Dirichlet on the
  weights, Normal-inverse-Wishart or Gamma on the component parameters, the weakly informative
  defaults of em_reference.priors) evaluated at θ̂. MAP-EM and NumPyro's MAP maximise it; with
  an AutoDelta guide NumPyro's SVI loss is exactly −log_joint (no entropy, no Jacobian).
- **elbo_em** = Σ_n Σ_k q_nk [log p(x_n, z_n = k | θ̂) − log q_nk], EM's bound on
  log p(X | θ̂) at the method's own responsibilities q. Since
  log p(X | θ) = ELBO(q, θ) + KL(q ‖ p(Z | X, θ)), it equals the log-likelihood after an
  E-step (q = posterior) and lies below it for hard EM (one-hot q on the most probable
  component ẑ_n), by KL(q ‖ posterior) = −Σ_n log p(z_n = ẑ_n | x_n, θ̂).
  Reported for EM-type methods only.
- **elbo_vi** = E_q[log p(X, θ)] − E_q[log q(θ)], the variational bound on the evidence
  log p(X) = log ∫ p(X | θ) p(θ) dθ, estimated with many draws from the fitted guide (± its
  Monte-Carlo standard error in `elbo_vi_se`), for the NumPyro VI methods (z summed out of
  the model). For `cavi` it is E_q[log p(X, z, θ)] − E_q[log q(z) q(θ)], the mean-field bound
  over assignments and parameters, in closed form (`elbo_vi_se` 0); it bounds the same
  log p(X). scikit-learn's VB bound omits constants and is stored apart, in
  `sklearn_vb_lower_bound`.
- **log_evidence** = log p(X), by bridge sampling on NUTS draws (`evidence` rows, ± its
  Monte-Carlo standard error in `log_evidence_se`), and **kl_gap** = log_evidence − elbo_vi
  (`kl_gap_se`) on every bound row of the same problem and prior: the KL divergence of the
  bound's q from the exact posterior, ≥ 0 (a bound above the evidence is a bug).
- **renyi_bound** (`vi_iwae`, `vi_renyi`): the bound the q was trained on instead of the ELBO,
  at the fitted q: IWAE's E[log (1/k) Σ_i w_i] (Burda et al. 2016) or Renyi's α-bound
  (Li & Turner 2016) with k = `renyi_particles` draws, w_i = p(X, θ_i) / q(θ_i);
  elbo_vi ≤ renyi_bound ≤ log p(X). Its `elbo_vi` is still the standard ELBO of that q.
- **BIC** = −2 log p(X | θ̂) + p log N, **AIC** = −2 log p(X | θ̂) + 2p,
  **ICL** = BIC − 2 Σ_n max_k log p(z_n = k | x_n, θ̂); lower is better.

How they relate: EM's ELBO bounds the likelihood at one θ, and EM climbs it to a local
maximum of log p(X | θ) (MAP-EM: of log p(X, θ)). VI's ELBO bounds a different number, the
evidence log p(X), which integrates θ out: log p(X) ≥ elbo_vi, and log p(X) is not comparable
to max_θ log p(X | θ) (it pays for the prior volume). The log joint is the MAP objective, a
density in θ, not a bound on either. Hence the three columns are never merged: compare
`elbo_em` with `log_likelihood_train`, `elbo_vi` between VI guides (a higher ELBO is a tighter
bound, i.e. a smaller KL(q(θ) ‖ p(θ | X))), and `log_joint` between MAP-EM and MAP.
"""


def _fmt(value):
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return ""
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4f}"
    return "" if value is None else str(value)


def _table(df: pd.DataFrame, columns) -> tuple[list[str], list[list[str]]]:
    present = [(c, h) for c, h in columns if c in df and df[c].notna().any()]
    header = [h for _, h in present]
    body = [[_fmt(row[c]) for c, _ in present] for _, row in df.iterrows()]
    return header, body


class Blocks:
    """The report as a list of (kind, payload); rendered to Markdown and to HTML."""

    def __init__(self):
        self.items = []

    def h(self, level, text):
        self.items.append(("h", (level, text)))

    def p(self, text):
        self.items.append(("p", text))

    def md(self, text):  # pre-formatted markdown (lists), rendered minimally in HTML
        self.items.append(("md", text))

    def table(self, header, body):
        self.items.append(("table", (header, body)))

    def figure(self, info, number):
        self.items.append(("figure", (info, number)))

    def to_markdown(self, root: Path) -> str:
        out = []
        for kind, x in self.items:
            if kind == "h":
                out.append(f"{'#' * x[0]} {x[1]}\n")
            elif kind in ("p", "md"):
                out.append(x + "\n")
            elif kind == "table":
                header, body = x
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(r) + " |" for r in body]
                out.append("")
            else:
                info, n = x
                rel = os.path.relpath(info.png, root)
                out.append(f"![Figure {n}]({rel})\n\n**Figure {n}.** {info.caption} "
                           f"([PDF]({os.path.relpath(info.pdf, root)}))\n")
        return "\n".join(out)

    def to_html(self, title: str) -> str:
        parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
                 "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;"
                 "padding:0 1em;line-height:1.45}table{border-collapse:collapse;font-size:12px;"
                 "margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 6px;"
                 "text-align:right}th{background:#f3f3f3}td:nth-child(-n+3){text-align:left}"
                 "figure{margin:1.5em 0}img{max-width:100%}figcaption{font-size:13px}"
                 "code{background:#f5f5f5}</style></head><body>"]
        for kind, x in self.items:
            if kind == "h":
                parts.append(f"<h{x[0]}>{html.escape(x[1])}</h{x[0]}>")
            elif kind == "p":
                parts.append(f"<p>{_inline(x)}</p>")
            elif kind == "md":
                parts.append(_md_block_to_html(x))
            elif kind == "table":
                header, body = x
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r)
                               + "</tr>" for r in body)
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>"
                                                     for h in header) + f"</tr>{rows}</table>")
            else:
                info, n = x
                data = base64.b64encode(Path(info.png).read_bytes()).decode()
                parts.append(f"<figure><img alt='Figure {n}' src='data:image/png;base64,{data}'>"
                             f"<figcaption><b>Figure {n}.</b> {html.escape(info.caption)}"
                             "</figcaption></figure>")
        parts.append("</body></html>")
        return "\n".join(parts)


def _inline(text):
    """Escape, then render `code` and **bold** (the only inline markup the report uses)."""
    import re

    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def _md_block_to_html(text):
    out, items, para = [], [], []

    def flush():
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()

    for line in text.splitlines():
        if line.startswith("- "):
            if para:
                flush()
            items.append(line[2:])
        elif line.startswith("  ") and items:
            items[-1] += " " + line.strip()
        elif not line.strip():
            flush()
        else:
            if items:
                flush()
            para.append(line.strip())
    flush()
    return "\n".join(out)


def _versions():
    out = []
    for name in ("jax", "numpyro", "sklearn", "numpy", "scipy"):
        try:
            out.append(f"{name} {__import__(name).__version__}")
        except Exception:  # noqa: BLE001
            pass
    return ", ".join(out)


def _timing(store) -> str:
    """The grid's wall time summed over every run into the folder (resumes included)."""
    runs = store.run_records()
    if not runs:
        return ""
    total = sum(float(r["wall_time"]) for r in runs)
    if len(runs) == 1:
        return f" The grid ran in {total:.0f} s of wall time."
    stopped = sum(r.get("outcome") != "finished" for r in runs)
    note = f", {stopped} of them interrupted or killed" if stopped else ""
    return (f" The grid ran in {total:.0f} s of wall time over {len(runs)} runs into this "
            f"folder{note} (the last: {float(runs[-1]['wall_time']):.0f} s).")


def _setup(blocks, store, df, title):
    cfg_path = store.root / "config.toml"
    ok = int((df["status"] == "ok").sum())
    failed = int((df["status"] != "ok").sum())
    blocks.h(2, "Setup")
    timing = _timing(store)
    blocks.p(f"{len(df)} cells ({ok} finished, {failed} failed), written "
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or 'host'} "
             f"({platform.machine()}, {os.cpu_count()} CPU cores; {_versions()}).{timing} "
             f"Each cell fits one method to one dataset with K components; the held-out "
             f"share of each dataset is fixed across cells. Every method of a cell starts from "
             f"the same k-means initialisation.")
    k = ", ".join(str(int(v)) for v in sorted(df["n_components"].dropna().unique())) or "-"
    seeds = ", ".join(map(str, sorted(df["seed"].unique())))
    cov = ", ".join(sorted({c for c in df["covariance_type"].fillna("") if c})) or "-"
    blocks.p(f"K: {k}. Covariance types: {cov}. Seeds: {seeds}. Full table: `results.csv`; "
             f"per-cell artefacts (traces, parameters, posterior draws, InferenceData "
             f"netCDF) under `cells/<key>/`." + (" Grid: `config.toml`." if cfg_path.is_file()
                                                 else ""))
    lines = []
    for name in sorted(df["dataset"].unique()):
        e = DATASETS.get(name)
        if e is not None:
            lines.append(f"- **{name}** ({e.kind}, {e.family}): {e.description} "
                         f"Source: {e.provenance}")
    blocks.h(3, "Datasets")
    blocks.md("\n".join(lines))
    blocks.h(3, "Methods")
    blocks.md("\n".join(f"- **{m}**: {METHODS[m].description}"
                        for m in sort_methods(df["method"].unique()) if m in METHODS))


def _import_grid_modules(names):
    """The grid's own registrations (its ``imports``), for their descriptions, table columns
    and figure hints; a module that no longer imports costs only those."""
    import importlib
    import warnings

    for name in names if isinstance(names, list) else []:
        try:
            importlib.import_module(str(name))
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"report: cannot import {name!r} from the grid's imports ({exc})",
                          stacklevel=3)


def _heal(store):
    """Rebuild results.csv from the cells, setting damaged files aside, unless a run is
    writing to the folder now (then the table is read as it is)."""
    try:
        with store.exclusive():
            store.heal()
    except ValueError:
        pass


def _num_text(value, digits=2):
    return "" if value is None or value != value else f"{value:.{digits}f}"


def _k(d) -> str:
    k = d["n_components"]
    return "" if k is None or k != k else str(int(k))


def _where(d) -> str:
    k = _k(d) and f"K={_k(d)}"
    return ", ".join(x for x in (d["dataset"], k, d["covariance_type"], f"seed {d['seed']}")
                     if x)


def _map_em_vs_map(blocks, records):
    pairs = comparisons.map_em_vs_map(records)
    if not pairs:
        return
    tol = comparisons.AGREEMENT_TOL
    blocks.h(3, "MAP-EM and MAP from the same start")
    blocks.p("MAP-EM (em_reference) and `map` (NumPyro: Adam, then L-BFGS to its gradient "
             "certificate) maximise the same log joint from the same shared initialisation; "
             f"where both are certified they should end at the same optimum, within {tol:g} "
             "nats per training sample. Δ = (log_joint of map − log_joint of map_em) / N.")
    body = [[d["dataset"], _k(d), d["covariance_type"], d["map_em_status"],
             d["map_status"], _num_text(d["log_joint_map_em"]), _num_text(d["log_joint_map"]),
             f"{d['difference_per_sample']:.2e}",
             "not compared (not certified)" if d["agree"] is None else
             ("same optimum" if d["agree"] else "different stationary points")]
            for d in pairs]
    blocks.table(["dataset", "K", "cov", "map_em status", "map status", "log_joint map_em",
                  "log_joint map", "Δ per sample", "verdict"], body)
    compared = [d for d in pairs if d["agree"] is not None]
    differ = [d for d in compared if not d["agree"]]
    skipped = len(pairs) - len(compared)
    tail = (f" {skipped} cell(s) not compared: one of the two fits is not certified."
            if skipped else "")
    if not compared:
        blocks.p("No cell has both fits certified." + tail)
    elif not differ:
        worst = max(abs(d["difference_per_sample"]) for d in compared)
        blocks.p(f"All {len(compared)} cell(s) where both are certified agree within {tol:g} "
                 f"nats per sample (largest |Δ| {worst:.1e})." + tail)
    else:
        names = "; ".join(f"{_where(d)}: {d['difference_per_sample']:+.2e} nats per sample "
                          f"({'map' if d['difference_per_sample'] > 0 else 'map_em'} higher)"
                          for d in differ)
        blocks.p(f"{len(compared) - len(differ)} of {len(compared)} cell(s) where both are "
                 f"certified agree within {tol:g} nats per sample; these ended on different "
                 f"stationary points: {names}." + tail)


def _local_optima(blocks, records):
    census = comparisons.local_optima(records)
    if not census:
        return
    tol = comparisons.OPTIMA_TOL
    blocks.h(3, "Local optima found by EM's restarts")
    blocks.p("Each `em` cell also runs EM from random starts (its `n_restarts`). The "
             "certified restarts' final objectives (EM's objective: the log-likelihood with "
             f"reg_covar's term) within {tol:g} nats per sample of each other count as one "
             "optimum; listed from the highest, with how many restarts reached each. "
             "'reported fit' says which of them the cell's own fit, from the shared start, "
             "is (1 = the best).")
    body = []
    for d in census:
        optima = ", ".join(f"{v:.2f} ({c}×)" for v, c in d["optima"]) or "none certified"
        rank = d["shared_start_rank"]
        if not d["shared_start_certified"]:
            own = "not certified"
        elif rank is None:
            own = f"none of them ({d['shared_start_objective']:.2f})"
        elif rank == 1:
            own = "the best"
        else:
            own = (f"optimum {rank}, {d['shared_start_gap_per_sample']:.2e} nats per sample "
                   "below the best")
        body.append([d["dataset"], _k(d), d["covariance_type"],
                     f"{d['n_certified']} / {d['n_restarts']}", str(len(d["optima"])),
                     optima, own])
    blocks.table(["dataset", "K", "cov", "certified restarts", "distinct optima",
                  "objectives (how often)", "reported fit"], body)
    local = [d for d in census if d["shared_start_rank"] not in (None, 1)
             and d["shared_start_certified"]]
    if local:
        blocks.p("The reported fit sits in a local optimum in: "
                 + "; ".join(f"{_where(d)} ({d['shared_start_gap_per_sample']:.2e} nats per "
                             "sample below the best restart)" for d in local) + ".")


def _kmeans_is_hard_em(blocks, records):
    rows = [r for r in records if r["method"] == "kmeans"
            and np.isfinite(r.get("sklearn_kmeans_label_mismatches", np.nan))]
    if not rows:
        return
    blocks.h(3, "k-means is hard EM")
    blocks.p("`kmeans` is em_reference's hard EM with the weights held at 1/K and one fixed "
             "spherical variance (PRML 9.3.2); each cell also runs scikit-learn's KMeans "
             "(Lloyd) from the same centres, the shared start's means. Where the claim holds, "
             "both end on the same partition: no label differs and the centres agree to "
             "rounding.")
    body = [[r["dataset"], _k(r), f"seed {r['seed']}",
             str(int(r["sklearn_kmeans_label_mismatches"])),
             f"{r['sklearn_kmeans_center_max_abs_diff']:.1e}",
             _num_text(r["kmeans_inertia"], 6), _num_text(r["sklearn_kmeans_inertia"], 6),
             f"{int(r['n_steps'])} / {int(r['sklearn_kmeans_n_iter'])}"] for r in rows]
    blocks.table(["dataset", "K", "seed", "labels that differ", "largest centre difference",
                  "inertia, hard EM", "inertia, KMeans", "iterations (hard EM / KMeans)"],
                 body)
    differ = [r for r in rows if r["sklearn_kmeans_label_mismatches"] > 0]
    blocks.p(f"Same partition in all {len(rows)} cell(s)." if not differ else
             f"Same partition in {len(rows) - len(differ)} of {len(rows)} cell(s); they "
             "differ in: " + "; ".join(_where(r) for r in differ) + ".")


def _certification(blocks, ok: pd.DataFrame):
    """The report's evidence section: MAP-EM vs MAP, the census of local optima, k-means
    against scikit-learn's."""
    records = ok.to_dict("records")
    if not any(r["method"] in ("map_em", "map", "em", "kmeans") for r in records):
        return
    blocks.h(2, "Certification")
    _map_em_vs_map(blocks, records)
    _local_optima(blocks, records)
    _kmeans_is_hard_em(blocks, records)


def _figure_failures(blocks, failures):
    """The figures that raised while drawing (figures.FigureFailure), listed where the
    figures would be, so a missing figure is never silent."""
    if not failures:
        return
    blocks.h(3, "Figures that failed to draw")
    blocks.table(["figure", "dataset", "error"],
                 [[f.figure, f.dataset or "(all)", f.error] for f in failures])


def exceeding_bounds_note(rows: pd.DataFrame) -> str:
    """The table's warning naming the rows whose bound exceeds the evidence by more than
    comparisons.EXCEEDS_SE standard errors ('' when none does)."""
    if "bound_exceeds_evidence" not in rows:
        return ""
    hit = rows[rows["bound_exceeds_evidence"].fillna(False).astype(bool)]
    if not len(hit):
        return ""
    which = "; ".join(f"{r['method']} K={_k(r)}: kl_gap {r['kl_gap']:.3f} ± "
                      f"{r['kl_gap_se']:.3f}" for _, r in hit.iterrows())
    return (f"**Bug: bound exceeds evidence** by more than {comparisons.EXCEEDS_SE:g} s.e. "
            f"({which}): no ELBO can lie above log p(X); the bound or the evidence is wrong.")


def _pm(value, se, digits=2):
    if se != se:
        return _num_text(value, digits)
    if se == 0:
        return f"{_num_text(value, digits)} (exact)"
    return f"{_num_text(value, digits)} ± {se:.{max(digits, 3)}f}"


def _verdict(d) -> str:
    if d["bound_exceeds_evidence"]:
        if d["kl_gap"] >= 0 or -d["sigmas"] < comparisons.EXCEEDS_SE:
            return "BUG: its trained (Renyi) bound exceeds the evidence"
        return f"BUG: bound exceeds evidence by {-d['sigmas']:.1f} s.e."
    if d["kl_gap"] >= 0:
        return "bound below evidence"
    return f"above it by {-d['sigmas']:.1f} s.e.: noise"


def _evidence(blocks, records):
    """The section judging every bound by the evidence, and CAVI's bound against NumPyro's."""
    gaps = comparisons.kl_gaps(records)
    joint = comparisons.joint_vs_marginal(records)
    unreferenced = comparisons.uncertified_evidence(records)
    if not (gaps or joint or unreferenced):
        return
    blocks.h(2, "Bounds against the evidence")
    ks = sorted({int(d["n_components"]) for d in gaps if _k(d)})
    logk = ", ".join(f"{math.lgamma(k + 1):.2f} for K = {k}" for k in ks if k > 1)
    sklearn = any(r["method"] == "sklearn_vb" for r in records)
    blocks.p("`evidence` estimates log p(X) by bridge sampling on NUTS draws "
             "(models.log_evidence, its proposal symmetrised over the K! relabellings), "
             "± its Monte-Carlo standard error. Every ELBO bounds it: kl_gap = log p(X) − "
             "elbo_vi is the KL divergence of the bound's q from the exact posterior, ≥ 0; "
             "its s.e. combines the evidence's and the bound's Monte-Carlo errors (CAVI's "
             "bound is exact). A bound above the evidence by more than "
             f"{comparisons.EXCEEDS_SE:g} s.e. is a bug, in the bound or in the evidence. "
             "A q with one mode covers one of the K! relabellings of a mixture's posterior, "
             "all of which the evidence integrates: with well-separated components its "
             "kl_gap is at least about log K!"
             + (f" ({logk})." if logk else ".")
             + (" `sklearn_vb` is not judged: scikit-learn's bound omits constants "
                "(`sklearn_vb_lower_bound`), so its gap would not be a KL divergence."
                if sklearn else ""))
    if gaps:
        trained = any(math.isfinite(d["renyi_gap"]) for d in gaps)
        body = [[d["dataset"], _k(d), d["covariance_type"], str(d["seed"]),
                 d["method"] + ("" if d["fit_status"] == "ok" else f" ({d['fit_status']})"),
                 d["bound_over"], _pm(d["elbo"], d["elbo_se"]),
                 _pm(d["log_evidence"], d["log_evidence_se"]),
                 _pm(d["kl_gap"], d["kl_gap_se"], 3)]
                + ([_pm(d["renyi_gap"], d["renyi_gap_se"], 3)
                    if math.isfinite(d["renyi_gap"]) else ""] if trained else [])
                + [_verdict(d)] for d in gaps]
        blocks.table(["dataset", "K", "cov", "seed", "method", "bound over", "elbo_vi",
                      "log p(X)", "kl_gap"] + (["renyi_gap"] if trained else []) + ["verdict"],
                     body)
        if trained:
            blocks.p("renyi_gap = log p(X) − renyi_bound: the distance below the evidence of "
                     "the bound a q was trained on instead of the ELBO (vi_iwae: the IWAE "
                     "bound, Burda et al. 2016; vi_renyi: Renyi's α-bound, Li & Turner 2016), "
                     "at the same q. It is tighter than that q's ELBO, while its kl_gap (the "
                     "same standard ELBO every q is judged by) is wider than the "
                     "ELBO-trained guide's: the trained bound rewards a q that covers the "
                     "posterior's mass rather than one that sits inside it.")
        bad = [d for d in gaps if d["bound_exceeds_evidence"]]
        if bad:
            blocks.p("**Bug: bound exceeds evidence** in "
                     + "; ".join(f"{_where(d)}, {d['method']}: kl_gap {d['kl_gap']:.3f} ± "
                                 f"{d['kl_gap_se']:.3f} ({-d['sigmas']:.1f} s.e. above)"
                                 for d in bad)
                     + ".")
        else:
            blocks.p(f"No bound exceeds its evidence by more than {comparisons.EXCEEDS_SE:g} "
                     f"s.e. ({len(gaps)} bound(s) judged).")
    if unreferenced:
        blocks.p("Not used as a reference (its NUTS chains did not mix, or the bridge "
                 "iteration did not converge): "
                 + "; ".join(f"{_where(r)} ({r.get('fit_status')})" for r in unreferenced)
                 + ".")
    if joint:
        parts = []
        for d in joint:
            diff, se = d["difference"], d["difference_se"]
            if abs(diff) <= 2 * se:
                verdict = (f"cavi and {d['best_method']} are equally tight within 2 s.e. "
                           f"(cavi − {d['best_method']} = {diff:+.3f} ± {se:.3f} nats)")
            else:
                tighter, looser = (("cavi", d["best_method"]) if diff > 0
                                   else (d["best_method"], "cavi"))
                verdict = (f"{tighter} is tighter than {looser} by {abs(diff):.3f} ± "
                           f"{se:.3f} nats")
            parts.append(f"{_where(d)}: {verdict}")
        blocks.p("CAVI's bound is over (z, θ): q(z) q(π) q(θ) separates the assignments from "
                 "the parameters, each factor of its exact conjugate form (Bishop PRML 10.2; "
                 "Gamma factors on Poisson rates, Beta factors on Bernoulli pixels). "
                 "The other bounds are over θ alone, z summed out of the model exactly, with "
                 "q(θ) on the unconstrained parameters: a normal (the NumPyro guides and "
                 "Laplace), a flow (vi_iaf) or annealed importance sampling (vi_dais, whose "
                 "bound is on a space extended by its momenta). All bound the same log p(X), "
                 "so the higher is the tighter (compared with the best of the others): "
                 + "; ".join(parts) + ".")


def write_report(out) -> Path:
    """Write figures/, report.md and report.html into the run folder ``out``; return the
    path of report.html."""
    store = ResultStore(out)
    if not store.root.is_dir():
        raise ValueError(f"{str(out)!r} is not a folder of results")
    title, imports = "mixbench comparison", []
    cfg = store.root / "config.toml"
    if cfg.is_file():
        import tomllib

        try:
            grid = tomllib.loads(cfg.read_text())
            title, imports = grid.get("title", title), grid.get("imports", [])
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
            pass
    _import_grid_modules(imports)
    _heal(store)
    df = store.read_table()
    figure_failures = []
    figures = make_figures(store, df, store.root / "figures", failures=figure_failures)
    blocks = Blocks()
    blocks.h(1, title)
    _setup(blocks, store, df, title)
    summary.add_summary(blocks, df)  # findings first, computed from the rows (summary.py)
    blocks.h(2, "Objectives and how they relate")
    blocks.md(OBJECTIVES)
    blocks.h(2, "Results")
    blocks.p("One row per finished cell (dataset parameters and all further columns are in "
             "`results.csv`; the seed is shown where a dataset has more than one). Log "
             "densities in nats; RMSEs after label alignment (Hungarian matching on the "
             "means/rates); times in seconds, compile time included in wall.")
    ok = df[df["status"] == "ok"]
    for dataset, rows in ok.groupby("dataset", sort=True):
        blocks.h(3, dataset)
        rows = rows.assign(_m=rows["method"].map(
            {m: i for i, m in enumerate(sort_methods(rows["method"].unique()))}))
        rows = rows.sort_values(["n_components", "covariance_type", "_m", "seed"])
        rows, note = mark_methods(rows)
        blocks.table(*_table(rows, dataset_columns(rows)))
        if note:
            blocks.p(note)
        exceeding = exceeding_bounds_note(rows)
        if exceeding:
            blocks.p(exceeding)
        for text in zero_probability_notes(rows):
            blocks.p(text)
    _certification(blocks, ok)
    _evidence(blocks, ok.to_dict("records"))
    failed = df[df["status"] != "ok"]
    if len(failed):
        blocks.h(2, "Failed cells")
        blocks.table(*_table(failed, (("dataset", "dataset"), ("n_components", "K"),
                                      ("covariance_type", "cov"), ("method", "method"),
                                      ("seed", "seed"), ("error", "error"))))
    blocks.h(2, "Figures")
    _figure_failures(blocks, figure_failures)
    for n, info in enumerate(figures, start=1):
        blocks.figure(info, n)
    atomic_write_text(store.root / "report.md", blocks.to_markdown(store.root))
    path = store.root / "report.html"
    atomic_write_text(path, blocks.to_html(title))
    atomic_write_text(store.root / "figures" / "index.json",
                      json.dumps([{"stem": f.stem, "caption": f.caption, "width_in": f.width_in,
                                   "min_text_pt": f.min_text_pt,
                                   "text_clashes": list(f.text_clashes),
                                   "legends_over_data": list(f.legends_over_data)}
                                  for f in figures],
                                 indent=1))
    return path
