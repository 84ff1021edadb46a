"""Comparisons across cells, computed from the store when the table is built (never by
refitting inside a worker).

``rmse_<param>_vs_em``: for every finished cell of a model with an alignment parameter, the RMS
difference between its parameters and those of the EM cell of the same problem (same dataset
and data, model and options, K, covariance type, seed and split; the prior does not matter to
EM), after matching its components to EM's (Hungarian, on the model's align_param), in the
model's comparable form (Gaussian covariances as full matrices). The reference is the problem's
certified ``em`` cell (fit_status "ok") with em's default options, else its only certified
``em`` cell; a problem without one gets no such column (NaN): an uncertified fit is never a
reference.

``map_em_vs_map``: per problem and prior where both ``map_em`` and ``map`` ran (from the same
shared start), the difference of their log joints per training sample and whether both are
certified: MAP-EM and MAP maximise the same objective, so certified fits agree to
``AGREEMENT_TOL`` or ended on different stationary points.

``local_optima``: per ``em`` cell with a restart census, the distinct optima its certified
restarts reached (objectives within ``OPTIMA_TOL`` nats per sample are one), how often each,
and which one the reported fit (from the shared start) is.

``kl_gap``: for every bound row (a method registered with ``bound_over``: the NumPyro VI guides,
Laplace and CAVI; methods.registry.bound_methods) of a
problem and prior with a certified ``evidence`` row, ``kl_gap = log_evidence - elbo_vi``, the
KL divergence of the bound's q from the exact posterior (over theta for NumPyro's guides, over
(z, theta) for CAVI; both bound the same log p(X)), with ``kl_gap_se`` = the two Monte-Carlo
standard errors combined (CAVI's bound is exact: 0). A bound above the evidence by more than
``EXCEEDS_SE`` standard errors (``bound_exceeds_evidence``) is a bug in the bound or in the
evidence, flagged by the report. scikit-learn's VB is not among them: its bound omits
constants (``sklearn_vb_lower_bound``), so its gap would not be a KL divergence.
"""

from __future__ import annotations

import json

import numpy as np

from . import alignment, metrics

REFERENCE_METHOD = "em"
AGREEMENT_TOL = 1e-6  # nats per sample: MAP-EM and MAP at the same optimum
OPTIMA_TOL = 1e-6  # nats per sample: two restarts' objectives within it are one optimum
EVIDENCE_METHOD = "evidence"
EXCEEDS_SE = 3.0  # a bound this many standard errors above the evidence is a bug
PROBLEM_COLUMNS = ("dataset", "dataset_params", "model", "model_options", "n_components",
                   "covariance_type", "seed", "held_out_fraction", "data_hash")


def problem_key(row: dict) -> str:
    return json.dumps([row.get(c) for c in PROBLEM_COLUMNS], default=str)


def _default_options() -> str | None:
    from .methods import METHODS

    entry = METHODS.get(REFERENCE_METHOD)
    return None if entry is None else json.dumps(entry.defaults, sort_keys=True)


def certified(row) -> bool:
    """Whether a finished row's fit is certified (fit_status "ok": an optimum with its
    certificate, a chain that mixed, a VI plateau). Rows written before fit_status existed
    count as certified."""
    status = row.get("fit_status")
    return status is None or status != status or status == "ok"


def em_references(ok: list[dict]) -> dict:
    """{problem key: key of its reference EM cell} (certified cells only)."""
    defaults = _default_options()
    groups: dict[str, list] = {}
    for row in ok:
        if row["method"] == REFERENCE_METHOD and certified(row):
            groups.setdefault(problem_key(row), []).append(row)
    out = {}
    for pkey, rows in groups.items():
        default = [r for r in rows if r.get("method_options") == defaults]
        if default:
            out[pkey] = default[0]["key"]
        elif len(rows) == 1:
            out[pkey] = rows[0]["key"]
    return out


def _components(model: str, covariance_type: str, names) -> tuple:
    from .models_registry import MODELS

    entry = MODELS.get(model)
    return tuple(names) if entry is None else entry.components(covariance_type)


def vs_reference(est: dict, ref: dict, align_param: str, log_scale: bool, components) -> dict:
    """{rmse_<name>_vs_em} of ``est`` against ``ref`` (both in comparable form) after matching
    est's components to ref's."""
    if align_param not in est or align_param not in ref:
        return {}
    if np.shape(est[align_param]) != np.shape(ref[align_param]):
        return {}
    perm = alignment.match_components(ref[align_param], est[align_param], log_scale)
    return metrics.parameter_errors(alignment.permute_params(est, perm, components), ref,
                                    "vs_em")


def add_reference_columns(rows: list[dict], compare_arrays, cache: dict | None = None):
    """Add the rmse_*_vs_em columns to ``rows`` (row dicts, in place).

    compare_arrays(key) -> {name: array} reads a cell's stored comparable parameters; cache
    {(key, reference key): columns} keeps results across calls (cells never change)."""
    cache = {} if cache is None else cache
    ok = [r for r in rows if r.get("status") == "ok" and r.get("align_param")]
    refs = em_references(ok)
    for row in ok:
        ref_key = refs.get(problem_key(row))
        if ref_key is None:
            continue
        pair = (row["key"], ref_key)
        if pair not in cache:
            est, ref = compare_arrays(row["key"]), compare_arrays(ref_key)
            cache[pair] = {} if not est or not ref else vs_reference(
                est, ref, row["align_param"], bool(row.get("align_log_scale")),
                _components(row["model"], row.get("covariance_type") or "", est))
        row.update(cache[pair])


def _finished(rows):
    return [r for r in rows if r.get("status") == "ok"]


def map_em_vs_map(rows) -> list[dict]:
    """One dict per (problem, prior) with both a map_em and a map row: dataset, n_components,
    covariance_type, seed, map_em_status, map_status, both_certified, log_joint_map_em,
    log_joint_map, difference_per_sample (map - map_em, nats per training sample), agree
    (|difference| <= AGREEMENT_TOL; None unless both are certified). rows: row dicts."""
    pairs: dict[str, dict] = {}
    for row in _finished(rows):
        if row["method"] in ("map_em", "map"):
            key = prior_problem_key(row)
            pairs.setdefault(key, {})[row["method"]] = row
    out = []
    for pair in pairs.values():
        if len(pair) < 2:
            continue
        em, gd = pair["map_em"], pair["map"]
        n = float(em.get("n_train") or np.nan)
        diff = (float(gd["log_joint"]) - float(em["log_joint"])) / n
        both = certified(em) and certified(gd)
        out.append({"dataset": em["dataset"], "n_components": em.get("n_components"),
                    "covariance_type": em.get("covariance_type") or "",
                    "seed": em.get("seed"), "map_em_status": em.get("fit_status") or "ok",
                    "map_status": gd.get("fit_status") or "ok", "both_certified": both,
                    "log_joint_map_em": float(em["log_joint"]),
                    "log_joint_map": float(gd["log_joint"]), "difference_per_sample": diff,
                    "agree": bool(abs(diff) <= AGREEMENT_TOL) if both else None})
    return sorted(out, key=lambda d: (d["dataset"], str(d["n_components"]),
                                      d["covariance_type"], str(d["seed"])))


def distinct_optima(objectives, n_samples, tol=OPTIMA_TOL) -> list[tuple[float, int]]:
    """[(objective, how many reached it)] from the highest down: sorted objectives within
    tol * n_samples of the first of their group count as one optimum (its best value)."""
    groups: list[list[float]] = []
    for v in sorted((float(v) for v in objectives), reverse=True):
        if groups and groups[-1][0] - v <= tol * n_samples:
            groups[-1].append(v)
        else:
            groups.append([v])
    return [(g[0], len(g)) for g in groups]


def local_optima(rows, tol=OPTIMA_TOL) -> list[dict]:
    """One dict per em row with a restart census: dataset, n_components, covariance_type,
    seed, n_restarts, n_certified, optima [(objective, count)] of the certified restarts,
    best (the highest), shared_start_objective (em_objective of the reported fit),
    shared_start_rank (1 = the best optimum; None when it is none of them) and
    shared_start_gap_per_sample (best - it, nats per sample)."""
    out = []
    for row in _finished(rows):
        census = row.get("restart_objectives")
        if row["method"] != REFERENCE_METHOD or not isinstance(census, str):
            continue
        values = np.asarray(json.loads(census), dtype=float)
        ok = np.asarray(json.loads(row.get("restart_certified") or "[]"), dtype=bool)
        ok = ok if ok.shape == values.shape else np.zeros(values.shape, bool)
        n = float(row.get("n_train") or np.nan)
        optima = distinct_optima(values[ok & np.isfinite(values)], n, tol)
        own = float(row.get("em_objective", np.nan))
        rank = next((i + 1 for i, (v, _) in enumerate(optima) if abs(v - own) <= tol * n),
                    None)
        best = optima[0][0] if optima else np.nan
        out.append({"dataset": row["dataset"], "n_components": row.get("n_components"),
                    "covariance_type": row.get("covariance_type") or "",
                    "seed": row.get("seed"), "n_restarts": int(values.size),
                    "n_certified": int(ok.sum()), "optima": optima, "best": best,
                    "shared_start_objective": own, "shared_start_certified": certified(row),
                    "shared_start_rank": rank,
                    "shared_start_gap_per_sample": (best - own) / n})
    return sorted(out, key=lambda d: (d["dataset"], str(d["n_components"]),
                                      d["covariance_type"], str(d["seed"])))


def prior_problem_key(row) -> str:
    return problem_key(row) + json.dumps(row.get("prior"), default=str)


def _number(row, column) -> float:
    value = row.get(column)
    try:
        return float("nan") if value is None else float(value)
    except (TypeError, ValueError):
        return float("nan")


def evidence_references(rows) -> dict:
    """{problem-and-prior key: the evidence row its bounds are judged by}: a certified
    evidence row with a finite estimate, the one of smallest standard error where several
    (other options) are."""
    out: dict[str, dict] = {}
    for row in _finished(rows):
        if row["method"] != EVIDENCE_METHOD or not certified(row):
            continue
        value, se = _number(row, "log_evidence"), _number(row, "log_evidence_se")
        if not (np.isfinite(value) and np.isfinite(se)):
            continue
        key = prior_problem_key(row)
        if key not in out or se < _number(out[key], "log_evidence_se"):
            out[key] = row
    return out


def kl_gap(elbo, elbo_se, log_evidence, log_evidence_se) -> dict:
    """{kl_gap, kl_gap_se, bound_exceeds_evidence} of one bound against the evidence. A bound
    without a standard error (NaN) is judged by the evidence's alone."""
    gap = float(log_evidence) - float(elbo)
    se = float(np.hypot(log_evidence_se, elbo_se))
    judge = se if np.isfinite(se) else float(log_evidence_se)
    return {"kl_gap": gap, "kl_gap_se": se,
            "bound_exceeds_evidence": bool(gap < -EXCEEDS_SE * judge)}


def _bounds():
    from .methods.registry import bound_methods

    return bound_methods()


def _judged(rows):
    """(bound row, its evidence row, kl_gap columns) for every finished bound row of a problem
    (and prior) with a reference evidence row. A row trained on Renyi's bound (renyi_bound:
    vi_iwae, vi_renyi) also gets renyi_gap = log_evidence - renyi_bound and its SE, and is
    flagged when either of its bounds exceeds the evidence."""
    refs = evidence_references(rows)
    bounds = _bounds()
    for row in _finished(rows):
        ref = refs.get(prior_problem_key(row))
        elbo = _number(row, "elbo_vi")
        if row["method"] in bounds and ref is not None and np.isfinite(elbo):
            evidence = _number(ref, "log_evidence"), _number(ref, "log_evidence_se")
            gap = kl_gap(elbo, _number(row, "elbo_vi_se"), *evidence)
            renyi = _number(row, "renyi_bound")
            if np.isfinite(renyi):
                other = kl_gap(renyi, _number(row, "renyi_bound_se"), *evidence)
                gap.update(renyi_gap=other["kl_gap"], renyi_gap_se=other["kl_gap_se"])
                gap["bound_exceeds_evidence"] |= other["bound_exceeds_evidence"]
            yield row, ref, gap


def add_kl_gap_columns(rows: list[dict]):
    """Add kl_gap, kl_gap_se, bound_exceeds_evidence to every finished bound row of a problem
    (and prior) with a reference evidence row (row dicts, in place)."""
    for row, _, gap in list(_judged(rows)):
        row.update(gap)


def kl_gaps(rows) -> list[dict]:
    """One dict per bound row judged against an evidence row (rows: dicts; kl_gap is computed
    here, not read): dataset, n_components, covariance_type, seed, prior, method, fit_status,
    bound_over ("(z, θ)" or "θ"), elbo, elbo_se, log_evidence, log_evidence_se,
    kl_gap, kl_gap_se, bound_exceeds_evidence, sigmas (kl_gap / kl_gap_se), run_time, and
    renyi_gap, renyi_gap_se (NaN but for a row trained on Renyi's bound)."""
    bounds = _bounds()
    out = []
    for row, ref, gap in _judged(rows):
        out.append({"dataset": row["dataset"], "n_components": row.get("n_components"),
                    "covariance_type": row.get("covariance_type") or "",
                    "seed": row.get("seed"), "prior": row.get("prior"),
                    "method": row["method"],
                    "fit_status": "ok" if certified(row) else row["fit_status"],
                    "bound_over": bounds[row["method"]], "run_time": _number(row, "run_time"),
                    "elbo": _number(row, "elbo_vi"), "elbo_se": _number(row, "elbo_vi_se"),
                    "log_evidence": _number(ref, "log_evidence"),
                    "log_evidence_se": _number(ref, "log_evidence_se"),
                    "renyi_gap": float("nan"), "renyi_gap_se": float("nan"), **gap,
                    "sigmas": gap["kl_gap"] / gap["kl_gap_se"] if gap["kl_gap_se"] > 0
                    else float("nan")})
    return sorted(out, key=lambda d: (d["dataset"], str(d["n_components"]),
                                      d["covariance_type"], str(d["seed"]), str(d["prior"]),
                                      list(bounds).index(d["method"])))


def uncertified_evidence(rows) -> list[dict]:
    """The finished evidence rows that are no reference (NUTS did not mix, or the bridge
    iteration did not converge)."""
    return [r for r in _finished(rows) if r["method"] == EVIDENCE_METHOD and not certified(r)]


def joint_vs_marginal(rows) -> list[dict]:
    """Per problem and prior with a CAVI row and NumPyro bound rows: which bound on the same
    log p(X) is tighter. dataset, n_components, covariance_type, seed, cavi_elbo, best_method
    (the NumPyro guide with the highest elbo_vi), best_elbo, best_elbo_se, difference
    (cavi - best: > 0 when CAVI's bound over (z, theta) is the tighter), difference_se (the
    NumPyro bound's; CAVI's is exact)."""
    groups: dict[str, dict] = {}
    bounds = _bounds()
    for row in _finished(rows):
        if row["method"] in bounds and np.isfinite(_number(row, "elbo_vi")):
            groups.setdefault(prior_problem_key(row), {})[row["method"]] = row
    out = []
    for group in groups.values():
        joint = [m for m in group if bounds[m] == "(z, θ)"]
        marginal = [m for m in group if bounds[m] == "θ"]
        if not joint or not marginal:
            continue
        cavi = group[joint[0]]
        best = max(marginal, key=lambda m: _number(group[m], "elbo_vi"))
        b = group[best]
        diff = _number(cavi, "elbo_vi") - _number(b, "elbo_vi")
        out.append({"dataset": cavi["dataset"], "n_components": cavi.get("n_components"),
                    "covariance_type": cavi.get("covariance_type") or "",
                    "seed": cavi.get("seed"), "cavi_method": joint[0],
                    "cavi_elbo": _number(cavi, "elbo_vi"), "best_method": best,
                    "best_elbo": _number(b, "elbo_vi"), "best_elbo_se": _number(b, "elbo_vi_se"),
                    "difference": diff,
                    "difference_se": float(np.hypot(_number(b, "elbo_vi_se"),
                                                    _number(cavi, "elbo_vi_se")))})
    return sorted(out, key=lambda d: (d["dataset"], str(d["n_components"]),
                                      d["covariance_type"], str(d["seed"])))
