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
    covariance_types = ["full"]          # models with covariance types only; default ["full"]
    methods = ["em", "map"]              # or "all" (every method registered with in_all=True)
    seeds = [0]
    model = "gaussian_mixture"           # default: the dataset family's default model
    model_options = {latent_dim = 10}    # options the model declares (part of the cell's key)
    prior = "default"                    # or a table of hyper-parameters overriding the defaults
    method_options = {nuts = {target_accept_prob = 0.95}}  # this block's cells only: over
                                         # [methods.nuts], for methods the block names

A model without a component count (``has_components=False``, a VAE) takes no n_components.
Pairs of a dataset's model and a method that cannot fit it (scikit-learn on Poisson data) are
skipped and listed in ``GridConfig.skipped``; everything else that is wrong raises ValueError
naming the problem, before any cell runs: unknown names, option values of the wrong type or out
of range (methods, datasets and models declare them, specs.py), prior values the prior class
rejects, K larger than the training set. Every dataset is loaded once here (its fingerprint
goes into the result keys, cells.py).
"""

from __future__ import annotations

import importlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .cells import Cell
from .datasets import DATASETS, check_dataset_params, fingerprint, load_dataset
from .methods import METHODS
from .models_registry import COVARIANCE_TYPES, MODELS, default_model_for
from .problem import build_prior, split_rows
from .versions import code_version

TOP_KEYS = {"title", "description", "imports", "run", "methods", "grid"}
RUN_KEYS = {"jobs", "held_out_fraction"}
BLOCK_KEYS = {"name", "datasets", "n_components", "covariance_types", "methods", "seeds",
              "model", "model_options", "prior", "method_options"}


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
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"config file {str(path)!r} is not UTF-8 text (byte "
                         f"{exc.object[exc.start]:#04x} at offset {exc.start}); save it as "
                         "UTF-8") from None
    except OSError as exc:
        raise ValueError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
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


def _table(value, what, where):
    if not isinstance(value, dict):
        raise ValueError(f"{where}: {what} must be a table, got {value!r}")
    return value


def _method_options(value, where, table_label, label, runs=None) -> dict:
    """A {method: {option: value}} table, every method's options checked against its
    signature: [methods] (label "[methods.{}]") or a block's method_options (label
    "method_options.{}", ``runs`` the methods the block names)."""
    table = _table(value, table_label, where)
    for name, opts in table.items():
        what = label.format(name)
        if name not in METHODS:
            raise ValueError(f"{where}: {what}: unknown method {name!r}; "
                             f"known methods: {sorted(METHODS)}")
        if runs is not None and name not in runs:
            raise ValueError(f"{where}: {what}: the block does not run {name!r} "
                             f"(its methods: {sorted(runs)})")
        _table(opts, what, where)
        try:
            METHODS[name].check_options(opts)
        except ValueError as exc:
            raise ValueError(f"{where}: {what}: {exc}") from None
    return table


def _dataset_ref(ref, where):
    """(name, every parameter with defaults filled in)."""
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
        return name, check_dataset_params(name, params)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _check_prior(prior, model, where):
    """The canonical prior: "default" or a non-empty table of known hyper-parameters."""
    if prior == "default" or prior == {}:
        return "default"
    if not isinstance(prior, dict):
        raise ValueError(f"{where}: prior must be \"default\" or a table, got {prior!r}")
    if not model.prior_fields:
        raise ValueError(f"{where}: model {model.name!r} takes no prior hyper-parameters")
    unknown = set(prior) - set(model.prior_fields)
    if unknown:
        raise ValueError(f"{where}: unknown prior hyper-parameter(s) {sorted(unknown)} for "
                         f"{model.name}; allowed: {list(model.prior_fields)}")
    return prior


class _Data:
    """What the grid needs to know of a dataset before any work: loaded once per reference."""

    def __init__(self):
        self._cache = {}

    def get(self, name, params, held_out, where):
        """(data hash, training rows, X_train) of a dataset reference."""
        key = (name, json.dumps(params, sort_keys=True), held_out)
        if key not in self._cache:
            try:
                ds = load_dataset(name, **params)
            except ValueError as exc:
                raise ValueError(f"{where}: dataset {name!r}: {exc}") from None
            rows = split_rows(ds, held_out)
            self._cache[key] = (fingerprint(ds), ds.X[rows["train"]])
        return self._cache[key]


def parse_config(data: dict, source: str = "", where: str = "config") -> GridConfig:
    """Validate a parsed TOML dict and expand it to cells (every default filled in, so one
    configuration is one cell however it is spelled)."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown top-level key(s) {sorted(unknown)}; "
                         f"allowed: {sorted(TOP_KEYS)}")
    imports = data.get("imports", [])
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        raise ValueError(f"{where}: imports must be a list of module names")
    import_modules(imports, where)
    run = _table(data.get("run", {}), "[run]", where)
    if set(run) - RUN_KEYS:
        raise ValueError(f"{where}: unknown [run] key(s) {sorted(set(run) - RUN_KEYS)}")
    jobs = _int(run.get("jobs", 1), "run.jobs", where, 1)
    held_out = run.get("held_out_fraction", 0.2)
    if isinstance(held_out, bool) or not isinstance(held_out, (int, float)) \
            or not 0 <= held_out < 1:
        raise ValueError(f"{where}: run.held_out_fraction must be in [0, 1), got {held_out!r}")

    method_options = _method_options(data.get("methods", {}), where, "[methods]",
                                     "[methods.{}]")

    blocks = data.get("grid")
    if not blocks or not isinstance(blocks, list):
        raise ValueError(f"{where}: no [[grid]] blocks: nothing to run")
    cells, skipped, seen = [], [], set()
    datasets_seen, priors_checked = _Data(), set()
    for i, block in enumerate(blocks):
        _table(block, f"grid[{i}]", where)
        w = f"{where}: grid[{i}]" + (f" ({block['name']})" if "name" in block else "")
        if set(block) - BLOCK_KEYS:
            raise ValueError(f"{w}: unknown key(s) {sorted(set(block) - BLOCK_KEYS)}; "
                             f"allowed: {sorted(BLOCK_KEYS)}")
        if "datasets" not in block:
            raise ValueError(f"{w}: datasets is missing")
        datasets = [_dataset_ref(r, w) for r in _list(block, "datasets", None, w)]
        seeds = [_int(s, "seed", w, 0) for s in _list(block, "seeds", [0], w)]
        cov_types = _list(block, "covariance_types", ["full"], w)
        for ct in cov_types:
            if ct not in COVARIANCE_TYPES:
                raise ValueError(f"{w}: unknown covariance type {ct!r}; "
                                 f"known: {list(COVARIANCE_TYPES)}")
        methods = block.get("methods", "all")
        methods = (sorted(m for m, e in METHODS.items() if e.in_all) if methods == "all"
                   else _list(block, "methods", None, w))
        for m in methods:
            if m not in METHODS:
                raise ValueError(f"{w}: unknown method {m!r}; known methods: {sorted(METHODS)}")
        block_options = _method_options(block.get("method_options", {}), w, "method_options",
                                        "method_options.{}", runs=methods)
        model_name = block.get("model")
        if model_name is not None and model_name not in MODELS:
            raise ValueError(f"{w}: unknown model {model_name!r}; known models: {sorted(MODELS)}")
        produced = 0
        for ds_name, ds_params in datasets:
            ds_entry = DATASETS[ds_name]
            family = ds_entry.family
            try:
                entry = MODELS[model_name or default_model_for(family)]
            except ValueError as exc:
                raise ValueError(f"{w}: dataset {ds_name!r}: {exc}") from None
            if entry.data_family != family:
                raise ValueError(f"{w}: model {entry.name!r} is for {entry.data_family} data, "
                                 f"dataset {ds_name!r} is {family}")
            try:
                model_options = entry.check_options(
                    _table(block.get("model_options", {}), "model_options", w))
            except ValueError as exc:
                raise ValueError(f"{w}: {exc}") from None
            if entry.has_components:
                ks = [_int(k, "n_components (K)", w, 1)
                      for k in _list(block, "n_components", [2], w)]
            elif "n_components" in block:
                raise ValueError(f"{w}: model {entry.name!r} has no component count K; "
                                 "remove n_components from the block")
            else:
                ks = [None]
            prior = _check_prior(block.get("prior", "default"), entry, w)
            cts = [ct for ct in cov_types if ct in entry.covariance_types] \
                if entry.uses_covariance_type else [""]
            if not cts:
                raise ValueError(f"{w}: model {entry.name!r} supports covariance types "
                                 f"{list(entry.covariance_types)}, the block asks for "
                                 f"{cov_types}")
            split = None if ds_entry.predefined_split else float(held_out)
            data_hash, X_train = datasets_seen.get(ds_name, ds_params, split, w)
            for k in ks:
                if k is not None and k > len(X_train):
                    raise ValueError(f"{w}: K={k} components for {len(X_train)} training "
                                     f"points of dataset {ds_name!r}")
                for ct in cts:
                    _validate_prior(entry, X_train, k, ct, prior, (ds_name, data_hash),
                                    priors_checked, w)
            for method in methods:
                if not METHODS[method].supports(entry):
                    skipped.append(f"{ds_name} x {method} ({method} cannot fit {entry.name})")
                    continue
                options = METHODS[method].check_options({**method_options.get(method, {}),
                                                         **block_options.get(method, {})})
                version = code_version(ds_entry, entry, METHODS[method])
                for k in ks:
                    for ct in cts:
                        for seed in seeds:
                            cell = Cell(ds_name, entry.name, k, method, seed, ct, ds_params,
                                        options, prior, split, model_options, version,
                                        data_hash)
                            produced += 1
                            if cell.key not in seen:
                                seen.add(cell.key)
                                cells.append(cell)
        if produced == 0:
            raise ValueError(f"{w}: the block expands to no cell")
    return GridConfig(cells, str(data.get("title", "mixbench comparison")),
                      str(data.get("description", "")), jobs, sorted(set(skipped)), source,
                      tuple(imports))


def _validate_prior(entry, X_train, k, ct, prior, data_id, checked, where):
    """Build the cell's prior once per (data, model, K, covariance type, prior): values the
    prior class rejects (df -3, a covariance_prior that is not positive definite) stop the
    grid here, naming the block."""
    key = (data_id, entry.name, k, ct, json.dumps(prior, sort_keys=True))
    if key in checked or entry.build_prior is None:
        return
    try:
        build_prior(entry, X_train, k, ct, prior)
    except ValueError as exc:
        raise ValueError(f"{where}: prior for {entry.name} (K={k}"
                         + (f", {ct}" if ct else "") + f") on dataset {data_id[0]!r}: {exc}") \
            from None
    checked.add(key)


def import_modules(names, where="config"):
    """Import the modules that register a grid's own datasets, models or methods."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"{where}: cannot import {name!r} listed in imports: {exc}") from exc
