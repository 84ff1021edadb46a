"""The README's worked example: a new NumPyro model registered in one file is fitted by the
existing methods through the CLI, and scored like the built-in mixtures."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.cli import main
from experiments.config import load_config
from experiments.models_registry import MODELS
from experiments.store import ResultStore

README = Path(__file__).resolve().parents[2] / "README.md"


def example(name):
    text = README.read_text()
    match = re.search(rf"<!-- example: {re.escape(name)} -->\s*```\w+\n(.*?)```", text, re.S)
    assert match, f"README has no example block {name}"
    return match.group(1)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "student_t.py").write_text(example("student_t.py"))
    (tmp_path / "student_t.toml").write_text(example("student_t.toml"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    MODELS.pop("student_t_mixture", None)
    sys.modules.pop("student_t", None)


def test_readme_example_config_is_valid(plugin):
    cfg = load_config(plugin / "student_t.toml")
    assert {c.model for c in cfg.cells} == {"student_t_mixture", "gaussian_mixture"}
    assert {"map", "vi_mean_field", "vi_full_rank", "nuts"} <= {c.method for c in cfg.cells}


def test_new_model_is_fitted_by_the_existing_methods(plugin, require_models):
    require_models("fit_map", "fit_vi")
    (plugin / "small.toml").write_text("""
imports = ["student_t"]
[methods.map]
num_steps = 300
[methods.vi_mean_field]
num_steps = 300
elbo_particles = 200
[[grid]]
datasets = [{name = "height", n = 200}]
model = "student_t_mixture"
n_components = [2]
methods = ["map", "vi_mean_field"]
""")
    out = plugin / "out"
    assert main(["run", "--config", str(plugin / "small.toml"), "--out", str(out),
                 "--no-progress"]) == 0
    table = ResultStore(out).read_table().set_index("method")
    assert (table["status"] == "ok").all()
    for method in ("map", "vi_mean_field"):
        row = table.loc[method]
        for col in ("log_likelihood_train", "log_likelihood_test", "log_joint", "ari", "bic",
                    "icl"):
            assert np.isfinite(row[col]), (method, col)
    assert np.isfinite(table.loc["vi_mean_field", "elbo_vi"])
    assert np.isfinite(table.loc["vi_mean_field", "posterior_sd_locs"])
    assert (out / "cells" / table.loc["vi_mean_field", "key"] / "posterior.nc").is_file()
    # the log joint the suite computes is the objective the MAP fit reports at its point
    trace = ResultStore(out).load_arrays(table.loc["map", "key"])["trace"]
    assert table.loc["map", "log_joint"] == pytest.approx(trace[-1], rel=1e-6)
    assert main(["report", str(out)]) == 0
    assert (out / "figures" / "estimates_height.png").is_file()
