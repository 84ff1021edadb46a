"""The TOML grid: the default covers everything; bad configs fail before any work."""

import pytest

from experiments.cli import default_config_path, main
from experiments.config import load_config, parse_config
from experiments.datasets import DATASETS
from experiments.methods import METHODS
from experiments.models_registry import MODELS

GOOD = """
[[grid]]
datasets = ["faithful"]
n_components = [2]
methods = ["em"]
"""


def test_default_and_vae_grids_cover_every_dataset_and_method():
    cfg = load_config(default_config_path())
    vae = load_config(default_config_path().with_name("vae.toml"))
    # every dataset that a registered model can fit: the binary images in vae.toml (the
    # default grid stays a coffee break), everything else in the default grid
    fittable = {name for name, e in DATASETS.items()
                if any(m.data_family == e.family for m in MODELS.values())}
    binary = {name for name in fittable if DATASETS[name].family == "bernoulli"}
    assert {c.dataset for c in cfg.cells} == fittable - binary
    assert {c.dataset for c in vae.cells} == {"digits_binary"}  # binarized_mnist: benchmarks
    assert {c.method for c in cfg.cells} | {c.method for c in vae.cells} == set(METHODS)
    assert {c.method for c in cfg.cells} == set(METHODS) - {"vae_elbo", "vae_iwae"}
    assert {c.model for c in vae.cells} == {"bernoulli_mixture", "vae", "gmm_prior_vae"}
    for grid in (cfg, vae):
        assert len({c.key for c in grid.cells}) == len(grid.cells)
        assert grid.jobs >= 1


def test_expansion_keys_and_skips():
    cfg = parse_config({"grid": [{"datasets": ["faithful", "london_deaths"],
                                  "n_components": [1, 2], "seeds": [0, 1],
                                  "methods": ["em", "sklearn_em"]}]})
    # faithful: 2 methods x 2 K x 2 seeds; london_deaths: em only (sklearn cannot fit Poisson)
    assert len(cfg.cells) == 8 + 4
    assert any("sklearn_em" in s for s in cfg.skipped)
    poisson = [c for c in cfg.cells if c.dataset == "london_deaths"]
    assert all(c.model == "poisson_mixture" and c.covariance_type == "" for c in poisson)
    # options are filled from the method's defaults, so equal configs hash equally
    again = parse_config({"grid": [{"datasets": ["faithful"], "n_components": [1],
                                    "methods": ["em"]}]})
    assert again.cells[0].key == cfg.cells[0].key


def test_block_method_options_override_the_global_ones_for_that_block_only():
    cfg = parse_config({"methods": {"nuts": {"num_warmup": 50, "num_samples": 60}},
                        "grid": [{"datasets": ["faithful"], "methods": ["nuts"]},
                                 {"datasets": ["london_deaths"], "methods": ["nuts", "em"],
                                  "method_options": {"nuts": {"target_accept_prob": 0.95}}}]})
    nuts = {c.dataset: c.method_options for c in cfg.cells if c.method == "nuts"}
    assert nuts["faithful"]["target_accept_prob"] == 0.8  # the method's default
    assert nuts["london_deaths"]["target_accept_prob"] == 0.95
    assert nuts["faithful"]["num_warmup"] == nuts["london_deaths"]["num_warmup"] == 50


@pytest.mark.parametrize("text, message", [
    ('[[grid]]\ndatasets = ["faithful"]\nmethods = ["em"]\n'
     'method_options = {nuts = {num_warmup = 5}}', "the block does not run 'nuts'"),
    ('[[grid]]\ndatasets = ["faithful"]\nmethods = ["nuts"]\n'
     'method_options = {nuts = {target_accept_prob = 1.5}}',
     "method_options.nuts: .*'target_accept_prob' must be < 1"),
    ('[[grid]]\ndatasets = ["nope"]\nmethods = ["em"]', "unknown dataset 'nope'"),
    ('[[grid]]\ndatasets = ["faithful"]\nmethods = ["magic"]', "unknown method 'magic'"),
    ('[[grid]]\ndatasets = ["faithful"]\nn_components = [0]', r"n_components \(K\) must be >= 1"),
    ('[[grid]]\ndatasets = ["faithful"]\nn_components = [-2, 2]', "must be >= 1"),
    ('[[grid]]\ndatasets = ["faithful"]\nn_components = [1.5]', "must be an integer"),
    ('[[grid]\ndatasets = ["faithful"]', "malformed TOML"),
    ('datasets = "faithful"', "unknown top-level key"),
    ('[[grid]]\ndatasets = ["faithful"]\ncovariance_types = ["round"]',
     "unknown covariance type 'round'"),
    ('[methods.em]\nmax_iters = 3\n' + GOOD, r"no option\(s\) \['max_iters'\]"),
    ('[[grid]]\ndatasets = [{name = "generated", q = 1}]', "no parameter"),
    ('[[grid]]\ndatasets = ["faithful"]\nprior = {kappa = 1.0}', "unknown prior"),
    ('[run]\njobs = 0\n' + GOOD, "run.jobs must be >= 1"),
    ('title = "nothing"', "no \\[\\[grid\\]\\] blocks"),
])
def test_bad_configs_name_the_problem(write_config, text, message):
    with pytest.raises(ValueError, match=message):
        load_config(write_config(text))


def test_cli_rejects_a_bad_config_before_any_work(write_config, tmp_path, capsys):
    path = write_config('[[grid]]\ndatasets = ["faithful", "nope"]\nmethods = ["em"]')
    out = tmp_path / "out"
    assert main(["run", "--config", str(path), "--out", str(out), "--no-progress"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert not (out / "cells").exists()


def test_missing_config_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_config(tmp_path / "absent.toml")
