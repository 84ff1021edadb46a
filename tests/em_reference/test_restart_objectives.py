"""restart_lower_bounds_ / restart_converged_: every restart's final objective and
certificate, not only the best one's."""

import numpy as np
import pytest

from em_reference import GaussianMixtureEM, PoissonMixtureEM


def test_each_restart_objective_is_that_restart_fitted_alone():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(-2, 1, (80, 1)), rng.normal(1.5, 0.5, (60, 1)),
                        rng.normal(4, 0.8, (40, 1))])
    kw = dict(init_params="random_from_data", random_state=11, algorithm="fast")
    many = GaussianMixtureEM(3, n_init=5, **kw).fit(X)
    assert many.restart_lower_bounds_.shape == (5,) and many.restart_converged_.shape == (5,)
    assert many.lower_bound_ == np.max(many.restart_lower_bounds_)
    # the first restart draws its start first from the same random_state: alone it is n_init=1
    first = GaussianMixtureEM(3, n_init=1, **kw).fit(X)
    np.testing.assert_allclose(many.restart_lower_bounds_[0], first.lower_bound_, rtol=1e-9)
    assert many.restart_converged_[0] == first.converged_


def test_a_restart_stopped_early_is_not_certified():
    counts = np.r_[np.random.default_rng(1).poisson(2, 300),
                   np.random.default_rng(2).poisson(6, 200)]
    with pytest.warns(Warning, match="did not reach a certified optimum"):
        est = PoissonMixtureEM(2, n_init=3, max_iter=2, random_state=0).fit(counts)
    assert not est.restart_converged_.any()
    est = PoissonMixtureEM(2, n_init=3, acceleration="squarem", random_state=0).fit(counts)
    assert est.restart_converged_.all()
    np.testing.assert_allclose(est.restart_lower_bounds_, est.lower_bound_, rtol=1e-9)
