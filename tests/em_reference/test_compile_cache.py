"""Bounded memory over many differently shaped fits (issue 21 item 1): past
tuning.MEMORY_MAPS_BUDGET mappings a fit clears JAX's compiled-program caches. The loop of
>= 1,000 random shapes that proves the bound is benchmarks/many_shapes.py (minutes)."""

import warnings

import jax
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from em_reference import GaussianMixtureEM, config, tuning


def test_memory_map_count_reads_this_process():
    assert config.memory_map_count() > 10


def test_a_fit_past_the_budget_clears_the_caches_and_still_predicts(monkeypatch):
    calls = []
    real = jax.clear_caches
    monkeypatch.setattr(jax, "clear_caches", lambda: (calls.append(1), real()))
    X = np.random.default_rng(0).normal(size=(50, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        monkeypatch.setattr(tuning, "MEMORY_MAPS_BUDGET", 10**9)
        GaussianMixtureEM(2, max_iter=3, random_state=0).fit(X)
        assert calls == []
        monkeypatch.setattr(tuning, "MEMORY_MAPS_BUDGET", 0)
        est = GaussianMixtureEM(2, max_iter=3, random_state=0).fit(X)
    assert calls == [1]
    # cleared caches recompile on demand: the fitted estimator still works
    assert np.isfinite(est.score(X)) and est.predict(X).shape == (50,)
