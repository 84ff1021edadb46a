"""The report's findings, computed from the rows of the store: which methods reach the same
optimum, where they differ and by how much, which fits are not certified, the tightest VI
bound, the K each criterion picks, and one table of headline quantities across datasets.

Everything here is a pure function of the results table (a DataFrame, one row per cell, the
columns of ResultStore.read_table); a column that is absent or NaN is skipped, never guessed.

A *problem* is one dataset (with its parameters and split), model, K, covariance type and
seed: the rows whose fits are directly comparable (comparisons.PROBLEM_COLUMNS). Only
certified rows (fit_status "ok") are compared; the others are named, never compared.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from . import comparisons
from .figures.style import sort_methods

# the tolerances, one per comparison, printed in the report's text
SAME_OPTIMUM_TOL = 1e-6  # nats per training sample: two train log-likelihoods at one optimum
SAME_PARAMS_TOL = 1e-3   # parameter RMSE vs EM (the parameters' own units) at EM's optimum
CRITERIA = (("bic", "BIC"), ("aic", "AIC"), ("icl", "ICL"))  # lower is better
TABLE_HEADER = ["dataset", "n train / held-out", "D", "K", "best held-out log-lik / point",
                "train log-lik spread / sample", "uncertified fits", "K by BIC"]


# ---------------------------------------------------------------- reading rows


def _num(row: dict, column: str) -> float:
    """row[column] as a float; NaN when absent, None or not a number."""
    value = row.get(column)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _k(row: dict):
    k = _num(row, "n_components")
    return None if math.isnan(k) else int(k)


def _certified(row: dict) -> bool:
    return comparisons.certified(row)


def _per_sample(row: dict, column: str) -> float:
    """row[column] / n_train (NaN without n_train)."""
    n = _num(row, "n_train")
    return _num(row, column) / n if n > 0 else math.nan


def _rmse_vs_em(row: dict) -> dict:
    """{parameter name: RMSE vs EM} of the row's finite rmse_<name>_vs_em columns."""
    out = {}
    for col in row:
        if col.startswith("rmse_") and col.endswith("_vs_em"):
            v = _num(row, col)
            if math.isfinite(v):
                out[col[len("rmse_"):-len("_vs_em")]] = v
    return out


def _records(df: pd.DataFrame) -> list[dict]:
    """The finished rows as dicts (an empty or status-less table gives none)."""
    if df is None or df.empty or "status" not in df or "dataset" not in df:
        return []
    return df[df["status"] == "ok"].to_dict("records")


def _problem_key(row: dict) -> str:
    return comparisons.problem_key(row)  # the key the rmse_*_vs_em columns were built on


# ---------------------------------------------------------------- naming rows


def _varying(rows: list[dict], column: str) -> bool:
    return len({json.dumps(r.get(column), default=str) for r in rows}) > 1


def _labeller(rows: list[dict]):
    """label(row) -> the parts of a problem that vary among ``rows`` (one dataset): model,
    dataset parameters, K (always, when the model has one), covariance type, seed."""
    show = {c: _varying(rows, c) for c in ("model", "dataset_params", "covariance_type",
                                            "seed", "held_out_fraction")}

    def label(row: dict, with_k: bool = True, with_seed: bool = True) -> str:
        parts = []
        if show["model"]:
            parts.append(str(row.get("model")))
        if show["dataset_params"]:
            parts.append(f"data {row.get('dataset_params')}")
        if with_k and _k(row) is not None:
            parts.append(f"K={_k(row)}")
        if show["covariance_type"] and row.get("covariance_type"):
            parts.append(str(row["covariance_type"]))
        if show["seed"] and with_seed:
            parts.append(f"seed {row.get('seed')}")
        if show["held_out_fraction"]:
            parts.append(f"held-out share {row.get('held_out_fraction')}")
        return ", ".join(parts)

    return label


def _namer(rows: list[dict]):
    """name(row) -> the method, with its options and prior when the method repeats in
    ``rows`` (one problem) with others."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["method"]] = counts.get(r["method"], 0) + 1

    def name(row: dict) -> str:
        if counts[row["method"]] < 2:
            return row["method"]
        extra = [f"{c} {row.get(c)}" for c in ("method_options", "prior")
                 if _varying([r for r in rows if r["method"] == row["method"]], c)]
        return f"{row['method']} ({'; '.join(extra)})" if extra else row["method"]

    return name


def _code(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _ordered(rows: list[dict]) -> list[dict]:
    order = {m: i for i, m in enumerate(sort_methods({r["method"] for r in rows}))}
    return sorted(rows, key=lambda r: (order[r["method"]], str(r.get("method_options")),
                                       str(r.get("prior"))))


def _prefix(text: str) -> str:
    return f"{text}: " if text else ""


# ---------------------------------------------------------------- the same optimum


def optimum_groups(rows: list[dict], reference_key=None) -> list[list[dict]]:
    """The certified rows of one problem that have a finite train log-likelihood, grouped by
    the optimum they reach. rows: row dicts of one problem.

    The first group is the reference's (the problem's reference EM cell when it is among the
    rows, else the row with the highest train log-likelihood): the rows whose train
    log-likelihood is within SAME_OPTIMUM_TOL nats per sample of the reference's and whose
    every rmse_*_vs_em (where present) is at most SAME_PARAMS_TOL. The rest are grouped by
    train log-likelihood alone (no parameter distance between two non-EM fits is stored):
    from the highest down, a row within SAME_OPTIMUM_TOL per sample of its group's first
    joins it."""
    rows = [r for r in rows
            if _certified(r) and math.isfinite(_per_sample(r, "log_likelihood_train"))]
    if not rows:
        return []
    rows = sorted(rows, key=lambda r: -_per_sample(r, "log_likelihood_train"))
    ref = next((r for r in rows if r.get("key") == reference_key), rows[0])
    ref_ll = _per_sample(ref, "log_likelihood_train")
    by_em = ref.get("key") == reference_key

    def joins_reference(r):
        close = abs(_per_sample(r, "log_likelihood_train") - ref_ll) <= SAME_OPTIMUM_TOL
        params = all(v <= SAME_PARAMS_TOL for v in _rmse_vs_em(r).values()) if by_em else True
        return close and params

    first = [ref] + [r for r in rows if r is not ref and joins_reference(r)]
    groups = [first]
    for r in rows:
        if any(r is x for x in first):
            continue
        if len(groups) > 1 and (_per_sample(groups[-1][0], "log_likelihood_train")
                                - _per_sample(r, "log_likelihood_train")) <= SAME_OPTIMUM_TOL:
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def _difference(row: dict, ref: dict, name) -> str:
    """'`m`: train ±x nats per sample, held-out ±y per point, RMSE vs EM ...' against ref."""
    parts = []
    d_train = _per_sample(row, "log_likelihood_train") - _per_sample(ref, "log_likelihood_train")
    if math.isfinite(d_train):
        parts.append(f"train {d_train:+.2e} nats per sample")
    test, test_ref = (_num(row, "log_likelihood_test_per_point"),
                      _num(ref, "log_likelihood_test_per_point"))
    if not (math.isnan(test) or math.isnan(test_ref)):
        d = test - test_ref if math.isfinite(test) and math.isfinite(test_ref) else None
        parts.append(f"held-out {d:+.2e} nats per point" if d is not None
                     else f"held-out {test:.4g} vs {test_ref:.4g} per point")
    rmse = _rmse_vs_em(row)
    if rmse:
        parts.append("RMSE vs EM " + ", ".join(f"{k} {v:.3g}" for k, v in rmse.items()))
    return f"`{name(row)}` " + ", ".join(parts)


def optimum_sentence(rows: list[dict], reference_key, label: str) -> str | None:
    """One sentence on one problem: who reaches the reference's optimum, who differs and by
    how much (None when fewer than two certified rows have a train log-likelihood)."""
    groups = optimum_groups(rows, reference_key)
    if sum(len(g) for g in groups) < 2:
        return None
    name = _namer(rows)
    ref = groups[0][0]
    by_em = ref.get("key") == reference_key
    criterion = (f"train log-likelihood within {SAME_OPTIMUM_TOL:g} nats per sample"
                 + (f" and every parameter RMSE vs EM, where stored, at most {SAME_PARAMS_TOL:g}"
                    if by_em else ""))
    same = [r for r in _ordered(groups[0]) if r is not ref]
    if same:
        verb = "reaches" if len(same) == 1 else "reach"
        text = (f"{_code(name(r) for r in same)} {verb} the same optimum as `{name(ref)}` "
                f"({criterion})")
    else:
        text = f"no other certified fit reaches the optimum of `{name(ref)}` ({criterion})"
    others = groups[1:]
    if others:
        text += f"; the others, relative to `{name(ref)}`: " + "; ".join(
            _difference(r, ref, name) for g in others for r in _ordered(g))
        shared = [g for g in others if len(g) > 1]
        if shared:
            text += (f"; sharing an optimum of their own (within {SAME_OPTIMUM_TOL:g} nats "
                     "per sample): " + "; ".join(_code(name(r) for r in _ordered(g))
                                                 for g in shared))
    return _prefix(label) + text + "."


def held_out_only_sentence(rows: list[dict], label: str) -> str | None:
    """For certified rows without a train log-likelihood (models scored on held-out data
    only): their held-out log-likelihood per point, best first."""
    rows = [r for r in rows if _certified(r)
            and not math.isfinite(_per_sample(r, "log_likelihood_train"))
            and not math.isnan(_num(r, "log_likelihood_test_per_point"))]
    if len(rows) < 2:
        return None
    name = _namer(rows)
    rows = sorted(rows, key=lambda r: -_num(r, "log_likelihood_test_per_point"))
    return (_prefix(label) + "held-out log-likelihood per point (no train log-likelihood): "
            + ", ".join(f"`{name(r)}` {_num(r, 'log_likelihood_test_per_point'):.4g}"
                        for r in rows) + ".")


# ---------------------------------------------------------------- bounds


def bound_sentence(rows: list[dict], label: str) -> str | None:
    """The tightest VI bound of one problem (the highest elbo_vi among certified rows) and
    each VI method's gap: to log_evidence when a row of the problem has it, else to the
    highest certified train log-likelihood (None without a certified finite elbo_vi)."""
    vi = [r for r in rows if _certified(r) and math.isfinite(_num(r, "elbo_vi"))]
    if not vi:
        return None
    name = _namer(rows)
    vi = sorted(vi, key=lambda r: -_num(r, "elbo_vi"))
    best = vi[0]
    se = _num(best, "elbo_vi_se")
    text = (f"tightest VI bound: `{name(best)}`, elbo_vi {_num(best, 'elbo_vi'):.2f}"
            + (f" ± {se:.2g}" if math.isfinite(se) else ""))
    if len(vi) > 1:
        text += "; " + ", ".join(f"`{name(r)}` {_num(best, 'elbo_vi') - _num(r, 'elbo_vi'):.3g} "
                                 "nats lower" for r in vi[1:])
    evidence = [_num(r, "log_evidence") for r in rows
                if math.isfinite(_num(r, "log_evidence"))]
    if evidence:
        target = max(evidence)
        what = f"log_evidence {target:.2f} (each gap estimates KL(q ‖ p(θ | X)))"
    else:
        lls = [r for r in rows
               if _certified(r) and math.isfinite(_num(r, "log_likelihood_train"))]
        if not lls:
            return _prefix(label) + text + "."
        top = max(lls, key=lambda r: _num(r, "log_likelihood_train"))
        target = _num(top, "log_likelihood_train")
        what = (f"the highest certified train log-likelihood ({target:.2f}, `{name(top)}`; "
                "no log_evidence stored; log p(X) lies between each elbo_vi and "
                "max_θ log p(X | θ), so, if this maximum is the global one, each gap is "
                "KL(q ‖ p(θ | X)) plus the prior's volume cost)")
    n = _num(best, "n_train")
    gaps = ", ".join(f"`{name(r)}` {target - _num(r, 'elbo_vi'):.3g} nats"
                     + (f" ({(target - _num(r, 'elbo_vi')) / n:.2e} per sample)" if n > 0 else "")
                     for r in vi)
    return _prefix(label) + text + f"; gap to {what}: {gaps}."


# ---------------------------------------------------------------- model selection


def _selection_key(row: dict) -> str:
    """A problem without its K, plus the method and its options and prior."""
    cols = [c for c in comparisons.PROBLEM_COLUMNS if c != "n_components"]
    return json.dumps([row.get(c) for c in cols + ["method", "method_options", "prior"]],
                      default=str)


def selections(rows: list[dict]) -> list[dict]:
    """One dict per (problem without K, method) with certified rows at two or more K and a
    finite criterion: rows (the group's rows), ks (the certified K), left_out (K whose rows
    are not certified), and {criterion column: the K with its lowest value}."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if _k(r) is not None:
            groups.setdefault(_selection_key(r), []).append(r)
    out = []
    for group in groups.values():
        good = [r for r in group if _certified(r)]
        ks = sorted({_k(r) for r in good})
        if len(ks) < 2:
            continue
        pick = {}
        for col, _ in CRITERIA:
            scored = [r for r in good if math.isfinite(_num(r, col))]
            if len({_k(r) for r in scored}) >= 2:
                pick[col] = _k(min(scored, key=lambda r: _num(r, col)))
        if pick:
            out.append({"rows": group, "ks": ks, "picks": pick,
                        "left_out": sorted({_k(r) for r in group if not _certified(r)})})
    return out


def seed_groups(sels: list[dict]) -> list[list[dict]]:
    """The selections of ``selections`` grouped over seeds: one list per (problem without K
    and seed, method), sorted by seed."""
    groups: dict[str, list[dict]] = {}
    for sel in sels:
        row = dict(sel["rows"][0], seed=None)
        groups.setdefault(_selection_key(row), []).append(sel)
    return [sorted(g, key=lambda sel: str(sel["rows"][0].get("seed"))) for g in groups.values()]


def _seeds_text(seeds) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def selection_sentence(sels: list[dict], label, name) -> str:
    """One sentence on the K each criterion picks for one seed group (seed_groups): the K
    alone where every seed agrees, else each K with the seeds that pick it."""
    row = sels[0]["rows"][0]
    seeds = [sel["rows"][0].get("seed") for sel in sels]
    picks = []
    for col, title in CRITERIA:
        by_k: dict = {}
        for sel, seed in zip(sels, seeds):
            if col in sel["picks"]:
                by_k.setdefault(sel["picks"][col], []).append(seed)
        if len(by_k) == 1:
            picks.append(f"{title} picks K={next(iter(by_k))}")
        elif by_k:
            picks.append(f"{title} picks " + ", ".join(
                f"K={k} ({_seeds_text(s)})" for k, s in sorted(by_k.items())))
    where_label = label(row, with_k=False, with_seed=len(sels) == 1)
    where = f"`{name(row)}`" + (f" ({where_label})" if where_label else "")
    ks = sorted({k for sel in sels for k in sel["ks"]})
    text = f"{where}: {', '.join(picks)}, of K = {', '.join(map(str, ks))}"
    if len(sels) > 1:
        text += f" over {_seeds_text(seeds)}"
    text += " (lowest is best)"
    left_out = [(sel["left_out"], seed) for sel, seed in zip(sels, seeds) if sel["left_out"]]
    if left_out:
        text += "; " + "; ".join(
            f"K={', '.join(map(str, ks))} left out (not certified)"
            + (f" in seed {seed}" if len(sels) > 1 else "") for ks, seed in left_out)
    return text + "."


# ---------------------------------------------------------------- per dataset


def _problems(rows: list[dict]) -> list[list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(_problem_key(r), []).append(r)
    return sorted(groups.values(), key=lambda g: (str(g[0].get("model")),
                                                  str(g[0].get("dataset_params")),
                                                  -1 if _k(g[0]) is None else _k(g[0]),
                                                  str(g[0].get("covariance_type")),
                                                  str(g[0].get("seed"))))


def dataset_sentences(df: pd.DataFrame, dataset: str) -> list[str]:
    """The findings for one dataset, one sentence each, from its finished rows."""
    rows = [r for r in _records(df) if r["dataset"] == dataset]
    if not rows:
        return []
    refs = comparisons.em_references(rows)  # the reference EM cell of each problem
    label = _labeller(rows)
    out = []
    for problem in _problems(rows):
        where = label(problem[0])
        for sentence in (optimum_sentence(problem, refs.get(_problem_key(problem[0])), where),
                         held_out_only_sentence(problem, where),
                         bound_sentence(problem, where)):
            if sentence:
                out.append(sentence)
    flagged = [r for r in rows if not _certified(r)]
    if flagged:
        out.append(f"Not certified ({len(flagged)} of {len(rows)} fits; named, not compared): "
                   + "; ".join(f"`{r['method']}`"
                               + (f" ({label(r)})" if label(r) else "")
                               + f" {r.get('fit_status')}" for r in _sort_rows(flagged)) + ".")
    for group in seed_groups(selections(rows)):
        out.append(selection_sentence(group, label, _namer(group[0]["rows"])))
    failed = [r for r in (df.to_dict("records") if "status" in df else [])
              if r.get("dataset") == dataset and r.get("status") != "ok"]
    if failed:
        out.append(f"{len(failed)} cell(s) failed (listed under Failed cells).")
    return out


def _sort_rows(rows):
    order = {m: i for i, m in enumerate(sort_methods({r["method"] for r in rows}))}
    return sorted(rows, key=lambda r: (-1 if _k(r) is None else _k(r),
                                       str(r.get("covariance_type")), str(r.get("seed")),
                                       order[r["method"]]))


# ---------------------------------------------------------------- across datasets


def _distinct(values) -> str:
    vals = sorted({int(v) for v in values if v == v and v is not None})
    return "/".join(map(str, vals)) if vals else ""


def headline_row(df: pd.DataFrame, dataset: str) -> dict:
    """The cross-dataset table's numbers for one dataset: n_train, n_test, n_features (each
    "a/b" when they vary), k_min, k_max (None without K), best_test (the highest certified
    log_likelihood_test_per_point, NaN without), best_test_method, best_test_k, spread (the
    largest, over problems, of max - min certified train log-likelihood per sample across
    methods; NaN without two), n_uncertified, n_ok, bic_k (the K BIC picks for em, else
    for the first method with picks; one per selection group, sorted)."""
    rows = [r for r in _records(df) if r["dataset"] == dataset]
    ks = [_k(r) for r in rows if _k(r) is not None]
    good = [r for r in rows if _certified(r)]
    tests = [r for r in good if not math.isnan(_num(r, "log_likelihood_test_per_point"))]
    best = max(tests, key=lambda r: _num(r, "log_likelihood_test_per_point"), default=None)
    spreads = []
    for problem in _problems(good):
        v = [_per_sample(r, "log_likelihood_train") for r in problem]
        v = [x for x in v if math.isfinite(x)]
        if len(v) >= 2:
            spreads.append(max(v) - min(v))
    sels = [s for s in selections(rows) if "bic" in s["picks"]]
    methods = sort_methods({s["rows"][0]["method"] for s in sels})
    chosen = "em" if "em" in methods else (methods[0] if methods else None)
    return {"dataset": dataset,
            "n_train": _distinct(r.get("n_train") for r in rows),
            "n_test": _distinct(r.get("n_test") for r in rows),
            "n_features": _distinct(r.get("n_features") for r in rows),
            "k_min": min(ks) if ks else None, "k_max": max(ks) if ks else None,
            "best_test": _num(best, "log_likelihood_test_per_point") if best else math.nan,
            "best_test_method": best["method"] if best else "",
            "best_test_k": _k(best) if best else None,
            "spread": max(spreads) if spreads else math.nan,
            "n_uncertified": len(rows) - len(good), "n_ok": len(rows),
            "bic_method": chosen,
            "bic_k": sorted(s["picks"]["bic"] for s in sels if s["rows"][0]["method"] == chosen)}


def headline_table(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """(header, body) of the cross-dataset table, one row per dataset with finished rows."""
    body = []
    for dataset in sorted({r["dataset"] for r in _records(df)}):
        h = headline_row(df, dataset)
        k = ("" if h["k_min"] is None else str(h["k_min"]) if h["k_min"] == h["k_max"]
             else f"{h['k_min']}-{h['k_max']}")
        if math.isnan(h["best_test"]):
            best = ""
        else:
            where = h["best_test_method"] + (f", K={h['best_test_k']}"
                                             if h["best_test_k"] is not None else "")
            best = f"{h['best_test']:.4g} ({where})"
        spread = "" if math.isnan(h["spread"]) else f"{h['spread']:.2e}"
        bic = (", ".join(map(str, sorted(set(h["bic_k"])))) + f" ({h['bic_method']})"
               if h["bic_k"] else "")
        body.append([dataset, f"{h['n_train']} / {h['n_test']}", h["n_features"], k, best,
                     spread, f"{h['n_uncertified']} of {h['n_ok']}", bic])
    return list(TABLE_HEADER), body


# ---------------------------------------------------------------- into the report

INTRO = (
    "Computed from the rows below. Only certified fits (fit_status ok) are compared. Two "
    "fits reach the same optimum when their train log-likelihoods are within "
    f"{SAME_OPTIMUM_TOL:g} nats per sample and, against EM, every parameter RMSE vs EM is at "
    f"most {SAME_PARAMS_TOL:g}; differences are the other fit's minus the reference's (EM's "
    "where certified, else the highest train log-likelihood), train in nats per training "
    "sample, held-out in nats per held-out point. In the table, the spread is the largest "
    "(over K, covariance type and seed) gap between the methods' train log-likelihoods per "
    "sample, the best held-out log-likelihood is over certified fits, and the uncertified "
    "fits are counted among the finished cells.")


def add_summary(blocks, df: pd.DataFrame):
    """Append the Summary section to ``blocks`` (report.Blocks: h, p, md, table)."""
    datasets = sorted({r["dataset"] for r in _records(df)})
    blocks.h(2, "Summary")
    if not datasets:
        blocks.p("No finished cells: nothing to summarise.")
        return
    blocks.p(INTRO)
    blocks.table(*headline_table(df))
    for dataset in datasets:
        sentences = dataset_sentences(df, dataset)
        if sentences:
            blocks.h(3, f"{dataset}: findings")
            blocks.md("\n".join(f"- {s}" for s in sentences))
