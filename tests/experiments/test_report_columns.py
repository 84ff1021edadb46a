"""A dataset's results table names the seed when its rows hold more than one."""

import pandas as pd

from experiments.report import dataset_columns, table_columns


def _rows(seeds):
    return pd.DataFrame([{"model": "gaussian_mixture", "method": "em", "n_components": 2,
                          "seed": s} for s in seeds])


def test_one_seed_keeps_the_model_s_columns():
    assert dataset_columns(_rows([0, 0])) == table_columns(["gaussian_mixture"])


def test_several_seeds_add_the_seed_after_the_method():
    names = [c for c, _ in dataset_columns(_rows([0, 1, 2]))]
    assert names[names.index("method") + 1] == "seed"
    assert names.count("seed") == 1
