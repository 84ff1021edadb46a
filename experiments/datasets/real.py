"""Real data sets: bundled files in ``experiments/data`` (see its PROVENANCE.md) and iris."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np

from .registry import Dataset, register_dataset


def _data_path(name):
    return resources.files("experiments") / "data" / name


def _faithful():
    text = _data_path("faithful.csv").read_text()
    rows = [line.split(",") for line in text.strip().splitlines()[1:]]
    return np.array(rows, dtype=float)  # (272, 2): eruptions, waiting


@register_dataset(
    "faithful", family="gaussian", kind="real",
    description="Old Faithful geyser, 272 eruptions: duration and waiting time (2-D).",
    provenance="R datasets::faithful (Härdle 1991; Azzalini & Bowman 1990); "
               "experiments/data/faithful.csv.")
def faithful():
    return Dataset(_faithful(), None, None, ("eruption duration", "waiting time"),
                   ("min", "min"))


@register_dataset(
    "faithful_waiting", family="gaussian", kind="real",
    description="Old Faithful waiting time to the next eruption alone (1-D, 272 values).",
    provenance="R datasets::faithful, column `waiting`; experiments/data/faithful.csv.")
def faithful_waiting():
    return Dataset(_faithful()[:, 1:], None, None, ("waiting time",), ("min",))


@register_dataset(
    "iris", family="gaussian", kind="real",
    description="Fisher's iris: 150 flowers, 4 measurements, 3 species (labels for ARI).",
    provenance="scikit-learn sklearn.datasets.load_iris (Fisher 1936).")
def iris():
    from sklearn.datasets import load_iris

    data = load_iris()
    names = ("sepal length", "sepal width", "petal length", "petal width")
    return Dataset(data.data.astype(float), data.target.astype(int), None, names, ("cm",) * 4)


@register_dataset(
    "london_deaths", family="poisson", kind="real",
    description="Daily deaths of women aged 80+ in London 1910-1912 (1096 days, counts 0..9).",
    provenance="Hasselblad (1969, Technometrics 11:259); experiments/data/london_deaths.csv.")
def london_deaths():
    text = _data_path("london_deaths.csv").read_text()
    table = np.array([line.split(",") for line in text.strip().splitlines()[1:]], dtype=int)
    x = np.repeat(table[:, 0], table[:, 1])  # one count per day, (1096,)
    order = np.random.default_rng(0).permutation(len(x))  # no day order in the source table
    return Dataset(x[order], None, None, ("deaths on a day",), ("count",))


@register_dataset(
    "low_dim_gauss_mix", family="gaussian", kind="real",
    description="posteriordb low_dim_gauss_mix data: 1000 draws of a two-component 1-D "
                "Gaussian mixture.",
    provenance="posteriordb (stan-dev/posteriordb) data low_dim_gauss_mix; "
               "experiments/data/posteriordb_low_dim_gauss_mix.json.")
def low_dim_gauss_mix():
    data = json.loads(_data_path("posteriordb_low_dim_gauss_mix.json").read_text())
    y = np.asarray(data["y"], dtype=float)
    assert len(y) == data["N"]
    return Dataset(y[:, None], None, None, ("y",), ("a.u.",))
