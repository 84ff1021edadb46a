"""What the figures read: rows of the table grouped per problem, and each cell's arrays."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..datasets import load_dataset
from ..problem import split_rows


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty or "status" not in df:
        return df.iloc[0:0]
    out = df[df["status"] == "ok"].copy()
    out["covariance_type"] = out["covariance_type"].fillna("").astype(str)
    return out


def primary_groups(df: pd.DataFrame):
    """One group of rows per dataset: the (model, K, covariance type, seed) with the most
    methods (ties: the true K of synthetic data, then smallest K, "full" first, smallest seed).
    Yields (dataset, rows)."""
    from ..datasets import DATASETS

    df = ok_rows(df)
    for dataset, rows in df.groupby("dataset", sort=True):
        # n_components is NaN for models without K (kept as a group of their own)
        rows = rows.assign(n_components=rows["n_components"].fillna(-1))
        keys = rows.groupby(["model", "n_components", "covariance_type", "seed"])["method"]
        counts = keys.nunique().reset_index()
        true_k = None
        if dataset in DATASETS:
            try:
                true_k = dataset_of(rows.iloc[0])[0].n_true_components
            except Exception:  # noqa: BLE001  (a dataset that no longer loads: no preference)
                true_k = None
        counts["not_true_k"] = counts["n_components"] != true_k
        counts["not_full"] = counts["covariance_type"] != "full"
        best = counts.sort_values(["method", "not_true_k", "n_components", "not_full", "seed"],
                                  ascending=[False, True, True, True, True]).iloc[0]
        sel = rows[(rows["model"] == best["model"]) & (rows["n_components"] == best["n_components"])
                   & (rows["covariance_type"] == best["covariance_type"])
                   & (rows["seed"] == best["seed"])]
        sel = sel.assign(n_components=sel["n_components"].where(sel["n_components"] >= 0))
        yield dataset, sel.drop_duplicates("method")


def dataset_of(row):
    """(Dataset, X_train (N, D)) of a table row: the data the cell was fitted on."""
    params = json.loads(row["dataset_params"]) if isinstance(row["dataset_params"], str) else {}
    ds = load_dataset(row["dataset"], **params)
    held_out = row.get("held_out_fraction")
    rows = split_rows(ds, None if held_out is None or held_out != held_out else float(held_out))
    return ds, ds.X[rows["train"]]


def k_text(row) -> str:
    """ "K=3" for a row of a model with components, else the model's name."""
    k = row["n_components"]
    return str(row["model"]) if k is None or k != k else f"K={int(k)}"


def hints_of(row) -> dict:
    """The figure hints the row's model registered (ModelEntry.figure_hints), {} if none."""
    from ..models_registry import MODELS

    entry = MODELS.get(row["model"])
    return {} if entry is None else entry.figure_hints


def arrays_of(store, key, prefix):
    """{name: array} of the cell's stored arrays under ``prefix/`` (param, aligned, sample)."""
    arrays = store.load_arrays(key)
    return {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def trace_of(store, key):
    return np.asarray(store.load_arrays(key).get("trace", np.array([])))
