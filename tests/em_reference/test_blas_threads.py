"""Every fitter runs with BLAS held to one thread (em_reference.config.one_blas_thread): XLA's
LAPACK calls go to OpenBLAS, whose spinning threads would take XLA's cores. The limit must hold
inside the fit and be undone after it, also when the fit raises."""

import functools

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import models
from em_reference import GaussianMixtureEM, config


def blas_threads():
    return {p["filepath"]: p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


pytestmark = pytest.mark.skipif(max(blas_threads().values(), default=1) < 2,
                                reason="this machine's BLAS runs one thread: nothing to limit")


def test_limit_holds_inside_and_is_undone_after_an_error():
    before = blas_threads()
    with pytest.raises(RuntimeError):
        with config.one_blas_thread():
            assert set(blas_threads().values()) == {1}
            raise RuntimeError("a fit that fails")
    assert blas_threads() == before


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 3 iterations
def test_whole_estimator_fit_runs_under_the_limit(monkeypatch):
    """The host's preparation (centring X with a BLAS call) and the compiled EM loop, dispatched
    and read back, both run inside the limit: a multi-threaded BLAS call before the loop leaves
    OpenBLAS's workers spinning through its first ~0.1 s."""
    import em_reference.base as base
    from em_reference.gaussian import GaussianFamily

    seen, real_fit_em = {}, base.fit_em
    real_center = GaussianFamily.data_center

    def spy_fit_em(*args, **kwargs):
        seen["loop"] = max(blas_threads().values())
        return real_fit_em(*args, **kwargs)

    def spy_center(self, X, w):
        seen["centring"] = max(blas_threads().values())
        return real_center(self, X, w)

    monkeypatch.setattr(base, "fit_em", spy_fit_em)
    monkeypatch.setattr(GaussianFamily, "data_center", spy_center)
    GaussianMixtureEM(2, max_iter=3, random_state=0).fit(np.random.default_rng(0).normal(
        size=(60, 2)))
    assert seen == {"loop": 1, "centring": 1}
    assert max(blas_threads().values()) >= 2  # undone after the fit


@pytest.mark.parametrize("fitter", ["fit_map", "fit_vi", "fit_nuts"])
def test_numpyro_fitters_run_under_the_limit(fitter):
    """The model is traced inside the fitter: record BLAS's thread count when it is."""
    seen = []

    @functools.wraps(models.gaussian_mixture)  # keeps prepare_args, which the fitters call
    def model(*args, **kwargs):
        seen.append(max(blas_threads().values()))
        return models.gaussian_mixture(*args, **kwargs)

    X = np.random.default_rng(0).normal(size=(40, 1))
    kwargs = {"fit_map": {"num_steps": 5}, "fit_vi": {"num_steps": 5, "num_samples": 10,
                                                    "model_kwargs": {"prior": "default"}},
              "fit_nuts": {"num_warmup": 5, "num_samples": 5, "num_chains": 1,
                           "model_kwargs": {"prior": "default"}}}[fitter]
    getattr(models, fitter)(model, X, 2, **kwargs)
    assert seen and set(seen) == {1}


def test_kmeans_initialisation_runs_on_one_thread_of_every_pool(monkeypatch):
    """scikit-learn's k-means (OpenMP and BLAS) runs on one thread: its OpenMP threads fight
    JAX's pool for the cores (em_reference.config.one_native_thread)."""
    import em_reference.initialization as initialization

    seen, real = [], initialization._responsibilities

    def spy(*args, **kwargs):
        seen.append({p["user_api"]: p["num_threads"] for p in threadpool_info()})
        return real(*args, **kwargs)

    monkeypatch.setattr(initialization, "_responsibilities", spy)
    GaussianMixtureEM(2, random_state=0).fit(np.random.default_rng(0).normal(size=(60, 2)))
    assert seen == [{"blas": 1, "openmp": 1}]
    assert max(p["num_threads"] for p in threadpool_info()) >= 2  # undone after the fit
