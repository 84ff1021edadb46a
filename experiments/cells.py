"""A grid cell: data + model + method + seed (posteriordb's "data + model + method" triple).

A cell is a frozen, JSON-serialisable record. Two hashes name it:

- ``config_key``: the cell's configuration alone (dataset and its parameters, model and its
  options, K, covariance type, method and its options, prior, seed, held-out fraction), every
  default filled in (config.py), so two spellings of one configuration are one cell;
- ``key`` (the result key, the folder name in the store): the configuration plus
  ``code_version`` (versions.py: a hash of the source of every module that produces fits and
  of the library versions) and ``data_hash`` (a fingerprint of the loaded dataset). After a
  code or data change a rerun gets new keys, so it recomputes instead of resuming stale
  rows; the store sets the stale row of the same configuration aside (store.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

CELL_FIELDS = ("dataset", "dataset_params", "model", "model_options", "n_components",
               "covariance_type", "method", "method_options", "prior", "seed",
               "held_out_fraction")
VERSION_FIELDS = ("code_version", "data_hash")


def _canonical(value):
    """Make nested dicts/lists hashable-stable: dict keys sorted, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _hash(payload) -> str:
    text = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Cell:
    """One unit of work. ``covariance_type`` is "" for models without one (Poisson);
    ``n_components`` is None for models without a component count (a VAE).

    dataset_params, model_options, method_options, prior: plain dicts (JSON values); prior
    may also be the string "default" (weakly informative defaults of em_reference.priors).
    held_out_fraction is None for datasets with their own split.
    """

    dataset: str
    model: str
    n_components: int | None
    method: str
    seed: int = 0
    covariance_type: str = ""
    dataset_params: dict = field(default_factory=dict)
    method_options: dict = field(default_factory=dict)
    prior: dict | str = "default"
    held_out_fraction: float | None = 0.2
    model_options: dict = field(default_factory=dict)
    code_version: str = ""
    data_hash: str = ""

    def to_json(self) -> str:
        return json.dumps(_canonical(asdict(self)), sort_keys=True, separators=(",", ":"))

    @property
    def config_key(self) -> str:
        """16 hex digits of the SHA-256 of the configuration fields (no versions)."""
        return _hash({f: getattr(self, f) for f in CELL_FIELDS})

    @property
    def key(self) -> str:
        """16 hex digits of the SHA-256 of every field, versions included."""
        return _hash(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Cell:
        return cls(**json.loads(text))

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, Cell) and self.key == other.key

    @property
    def label(self) -> str:
        ct = f"/{self.covariance_type}" if self.covariance_type else ""
        k = f" K={self.n_components}" if self.n_components is not None else ""
        return f"{self.dataset}{k}{ct} {self.model} {self.method} seed={self.seed}"
