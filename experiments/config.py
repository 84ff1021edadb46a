"""The declarative grid: a TOML file -> a validated list of cells, before any work starts.

Schema (every key optional except ``[[grid]]``)::

    title = "..."                        # shown in the report
    imports = ["my_models"]              # modules to import first: they register datasets,
                                         # models or methods (also imported by every worker)
    [run]
    jobs = 2                             # local worker processes (--jobs overrides)
    held_out_fraction = 0.2              # share of each data set held out for log_likelihood_test
    [methods.vi_mean_field]              # options of one method, for every cell that uses it
    num_steps = 2000
    [[grid]]                             # one block = one cartesian product; blocks are unioned
    datasets = ["faithful", {name = "generated", n = 2000, d = 3, k = 4}]
    n_components = [2, 3]
    covariance_types = ["full"]          # Gaussian models only; default ["full"]
    methods = ["em", "map"]              # or "all"
    seeds = [0]
    model = "gaussian_mixture"           # default: the dataset family's built-in mixture
    prior = "default"                    # or a table of hyper-parameters overriding the defaults

Pairs of a dataset's model and a method that cannot fit it (scikit-learn on Poisson data) are
skipped and listed in ``GridConfig.skipped``; everything else that is wrong raises ValueError
naming the problem.
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .cells import Cell
from .datasets import DATASETS, check_dataset_params
from .methods import METHODS
from .models_registry import (
    COVARIANCE_TYPES,
    GAUSSIAN_PRIOR_FIELDS,
    MODELS,
    POISSON_PRIOR_FIELDS,
    default_model_for,
)

TOP_KEYS = {"title", "description", "imports", "run", "methods", "grid"}
RUN_KEYS = {"jobs", "held_out_fraction"}
BLOCK_KEYS = {"name", "datasets", "n_components", "covariance_types", "methods", "seeds",
              "model", "prior"}
PRIOR_FIELDS = {"gaussian_mixture": GAUSSIAN_PRIOR_FIELDS, "poisson_mixture": POISSON_PRIOR_FIELDS}


@dataclass(frozen=True)
class GridConfig:
    cells: list[Cell]
    title: str = "mixbench comparison"
    description: str = ""
    jobs: int = 1
    skipped: list[str] = field(default_factory=list)
    source: str = ""
    imports: tuple[str, ...] = ()


def load_config(path) -> GridConfig:
    """Read and validate a TOML grid file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"malformed TOML in {str(path)!r}: {exc}") from exc
    return parse_config(data, source=text, where=str(path))


def _list(block, key, default, where):
    value = block.get(key, default)
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise ValueError(f"{where}: {key} is empty")
    return value


def _int(value, what, where, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: {what} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{where}: {what} must be >= {minimum}, got {value}")
    return value


def _dataset_ref(ref, where):
    if isinstance(ref, str):
        name, params = ref, {}
    elif isinstance(ref, dict) and isinstance(ref.get("name"), str):
        params = {k: v for k, v in ref.items() if k != "name"}
        name = ref["name"]
    else:
        raise ValueError(f"{where}: a dataset is a name or a table with a name, got {ref!r}")
    if name not in DATASETS:
        raise ValueError(f"{where}: unknown dataset {name!r}; known datasets: {sorted(DATASETS)}")
    try:
        check_dataset_params(name, params)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return name, params


def _check_prior(prior, model, where):
    if prior == "default":
        return prior
    if not isinstance(prior, dict):
        raise ValueError(f"{where}: prior must be \"default\" or a table, got {prior!r}")
    allowed = PRIOR_FIELDS.get(model)
    if allowed is not None:
        unknown = set(prior) - set(allowed)
        if unknown:
            raise ValueError(f"{where}: unknown prior hyper-parameter(s) {sorted(unknown)} for "
                             f"{model}; allowed: {list(allowed)}")
    return prior


def parse_config(data: dict, source: str = "", where: str = "config") -> GridConfig:
    """Validate a parsed TOML dict and expand it to cells."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown top-level key(s) {sorted(unknown)}; "
                         f"allowed: {sorted(TOP_KEYS)}")
    imports = data.get("imports", [])
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        raise ValueError(f"{where}: imports must be a list of module names")
    import_modules(imports, where)
    run = data.get("run", {})
    if set(run) - RUN_KEYS:
        raise ValueError(f"{where}: unknown [run] key(s) {sorted(set(run) - RUN_KEYS)}")
    jobs = _int(run.get("jobs", 1), "run.jobs", where, 1)
    held_out = run.get("held_out_fraction", 0.2)
    if not isinstance(held_out, (int, float)) or not 0 <= held_out < 1:
        raise ValueError(f"{where}: run.held_out_fraction must be in [0, 1), got {held_out!r}")

    method_options = data.get("methods", {})
    for name, opts in method_options.items():
        if name not in METHODS:
            raise ValueError(f"{where}: [methods.{name}]: unknown method {name!r}; "
                             f"known methods: {sorted(METHODS)}")
        if not isinstance(opts, dict):
            raise ValueError(f"{where}: [methods.{name}] must be a table")
        METHODS[name].check_options(opts)

    blocks = data.get("grid")
    if not blocks or not isinstance(blocks, list):
        raise ValueError(f"{where}: no [[grid]] blocks: nothing to run")
    cells, skipped, seen = [], [], set()
    for i, block in enumerate(blocks):
        w = f"{where}: grid[{i}]" + (f" ({block['name']})" if "name" in block else "")
        if set(block) - BLOCK_KEYS:
            raise ValueError(f"{w}: unknown key(s) {sorted(set(block) - BLOCK_KEYS)}; "
                             f"allowed: {sorted(BLOCK_KEYS)}")
        if "datasets" not in block:
            raise ValueError(f"{w}: datasets is missing")
        datasets = [_dataset_ref(r, w) for r in _list(block, "datasets", None, w)]
        ks = [_int(k, "n_components (K)", w, 1) for k in _list(block, "n_components", [2], w)]
        seeds = [_int(s, "seed", w, 0) for s in _list(block, "seeds", [0], w)]
        cov_types = _list(block, "covariance_types", ["full"], w)
        for ct in cov_types:
            if ct not in COVARIANCE_TYPES:
                raise ValueError(f"{w}: unknown covariance type {ct!r}; "
                                 f"known: {list(COVARIANCE_TYPES)}")
        methods = block.get("methods", "all")
        methods = sorted(METHODS) if methods == "all" else _list(block, "methods", None, w)
        for m in methods:
            if m not in METHODS:
                raise ValueError(f"{w}: unknown method {m!r}; known methods: {sorted(METHODS)}")
        model_name = block.get("model")
        if model_name is not None and model_name not in MODELS:
            raise ValueError(f"{w}: unknown model {model_name!r}; known models: {sorted(MODELS)}")
        produced = 0
        for ds_name, ds_params in datasets:
            family = DATASETS[ds_name].family
            model = model_name or default_model_for(family)
            entry = MODELS[model]
            if entry.data_family != family:
                raise ValueError(f"{w}: model {model!r} is for {entry.data_family} data, "
                                 f"dataset {ds_name!r} is {family}")
            prior = _check_prior(block.get("prior", "default"), model, w)
            cts = cov_types if entry.uses_covariance_type else [""]
            for method in methods:
                if not METHODS[method].supports(model):
                    skipped.append(f"{ds_name} x {method} ({method} cannot fit {model})")
                    continue
                options = METHODS[method].check_options(method_options.get(method, {}))
                for k in ks:
                    for ct in cts:
                        for seed in seeds:
                            cell = Cell(ds_name, model, k, method, seed, ct, ds_params,
                                        options, prior, float(held_out))
                            produced += 1
                            if cell.key not in seen:
                                seen.add(cell.key)
                                cells.append(cell)
        if produced == 0:
            raise ValueError(f"{w}: the block expands to no cell")
    return GridConfig(cells, str(data.get("title", "mixbench comparison")),
                      str(data.get("description", "")), jobs, sorted(set(skipped)), source,
                      tuple(imports))


def import_modules(names, where="config"):
    """Import the modules that register a grid's own datasets, models or methods."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"{where}: cannot import {name!r} listed in imports: {exc}") from exc
