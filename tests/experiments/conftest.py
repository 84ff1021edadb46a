"""Fixtures for the experiments tests: tiny grids written to temporary TOML files."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

import experiments  # noqa: F401  (float64 first)

# when, how long
TIMING_COLUMNS = ["wall_time", "compile_time", "run_time", "restart_census_time", "finished_at",
                  "cell_time", "cell_compile_time"]


@pytest.fixture
def write_config(tmp_path):
    """write_config(text, name="grid.toml") -> path of a TOML file holding ``text``."""

    def write(text, name="grid.toml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def comparable():
    """comparable(df) -> the table without the columns that measure time, sorted by key."""

    def strip(df: pd.DataFrame) -> pd.DataFrame:
        df = df.drop(columns=[c for c in TIMING_COLUMNS if c in df.columns])
        return df.sort_values("key").reset_index(drop=True)

    return strip


def _models_has(*names):
    try:
        import models
    except ImportError:
        return False
    return all(hasattr(models, n) for n in names)


@pytest.fixture
def require_models():
    """require_models(*names): skip unless the models package provides all of ``names``."""

    def check(*names):
        if not _models_has(*names):
            pytest.skip(f"models does not provide {names} yet")

    return check
