"""One runner per library. A runner is built once per case (data and initial parameters fixed)
and ``runner.fit(max_iter)`` runs exactly ``max_iter`` EM iterations (tol=0) through the
library's public API from the shared initial parameters, blocks until the result is on the
host and returns (weights, means, covariances) as numpy arrays.

Library imports happen inside the builders, so a job imports only what it runs.
"""

from __future__ import annotations

import warnings

import numpy as np

from benchmarks.cases import REG_COVAR, Case

CONTENDERS = ("em_reference", "sklearn", "sklearn_1t", "gmmx")


class Runner:
    """name, dtype, jax (True when the library compiles with XLA) and fit(max_iter)."""

    def __init__(self, name, dtype, fit, jax):
        self.name, self.dtype, self.fit, self.jax = name, dtype, fit, jax


def build(name: str, case: Case, X: np.ndarray, init: dict) -> Runner:
    builders = {"em_reference": _em_reference, "sklearn": _sklearn,
                "sklearn_1t": lambda *a: _sklearn(*a, threads=1), "gmmx": _gmmx}
    if name not in builders:
        raise ValueError(f"unknown contender {name!r}; expected one of {sorted(builders)}")
    return builders[name](case, X, init)


def _em_reference(case, X, init):
    from em_reference import GaussianMixtureEM

    def fit(max_iter, **fit_kwargs):
        est = GaussianMixtureEM(case.k, covariance_type=case.covariance_type, tol=0.0,
                                reg_covar=REG_COVAR, max_iter=max_iter,
                                weights_init=init["weights"], means_init=init["means"],
                                precisions_init=init["precisions"], dtype=case.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 never converges
            est.fit(X, **fit_kwargs)
        return est.weights_, est.means_, est.covariances_

    return Runner("em_reference", case.dtype, fit, jax=True)


def _sklearn(case, X, init, threads=None):
    """scikit-learn with its default thread pools (BLAS, OpenMP: one thread per core), or
    limited to ``threads`` (sklearn_1t). On a shared machine idle-spinning BLAS threads can
    make the default many times slower than one thread, so both are measured and the faster
    one is the baseline."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    def fit(max_iter):
        # with weights/means/precisions all given, init_params only decides the (discarded)
        # initial responsibilities: random_from_data is the cheapest, k-means would be timed
        est = GaussianMixture(case.k, covariance_type=case.covariance_type, tol=0.0,
                              reg_covar=REG_COVAR, max_iter=max_iter,
                              weights_init=init["weights"], means_init=init["means"],
                              precisions_init=init["precisions"],
                              init_params="random_from_data", random_state=0)
        with warnings.catch_warnings(), threadpool_limits(threads):
            warnings.simplefilter("ignore")
            est.fit(X)
        return est.weights_, est.means_, est.covariances_

    name = "sklearn" if threads is None else f"sklearn_{threads}t"
    return Runner(name, case.dtype, fit, jax=False)


def _gmmx(case, X, init):
    import jax
    import jax.numpy as jnp
    from gmmx import EMFitter, GaussianMixtureModelJax

    if case.dtype != "float32" or jax.config.jax_enable_x64:
        raise ValueError("gmmx runs in float32 only, in a process with jax_enable_x64 off "
                         "(MIXBENCH_X64=0)")

    def fit(max_iter):
        f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
        gmm = GaussianMixtureModelJax.from_squeezed(
            means=f32(init["means"]), covariances=f32(init["covariances"]),
            weights=f32(init["weights"]), covariance_type=case.covariance_type)
        # gmmx stops when |change of the mean log-likelihood| < tol: tol=0 never stops early
        result = EMFitter(max_iter=max_iter, tol=0.0, reg_covar=REG_COVAR).fit(
            jnp.asarray(X, jnp.float32), gmm)
        jax.block_until_ready(result.gmm)
        g = result.gmm
        return g.weights_numpy, g.means_numpy, g.covariances.values_numpy

    return Runner("gmmx", case.dtype, fit, jax=True)
