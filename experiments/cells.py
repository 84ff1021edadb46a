"""A grid cell: data + model + method + seed (posteriordb's "data + model + method" triple).

A cell is a frozen, JSON-serialisable record; its ``key`` is a hash of its canonical JSON, so a
rerun of the same configuration finds the cells it already finished.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

CELL_FIELDS = ("dataset", "dataset_params", "model", "n_components", "covariance_type",
               "method", "method_options", "prior", "seed", "held_out_fraction")


def _canonical(value):
    """Make nested dicts/lists hashable-stable: dict keys sorted, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


@dataclass(frozen=True)
class Cell:
    """One unit of work. ``covariance_type`` is "" for models without one (Poisson).

    dataset_params, method_options, prior: plain dicts (JSON values); prior may also be the
    string "default" (weakly informative defaults of em_reference.priors).
    """

    dataset: str
    model: str
    n_components: int
    method: str
    seed: int = 0
    covariance_type: str = ""
    dataset_params: dict = field(default_factory=dict)
    method_options: dict = field(default_factory=dict)
    prior: dict | str = "default"
    held_out_fraction: float = 0.2

    def to_json(self) -> str:
        return json.dumps(_canonical(asdict(self)), sort_keys=True, separators=(",", ":"))

    @property
    def key(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON of every field."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

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
        return f"{self.dataset} K={self.n_components}{ct} {self.method} seed={self.seed}"
