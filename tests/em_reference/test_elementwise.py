"""The E-step's float64 exp and log polynomials against numpy's exp and log (an independent
implementation), in ulps, over the ranges the E-step feeds them and at their edges."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from em_reference.fast.elementwise import exp_nonpositive, log_positive


def ulps(got, ref):
    return np.abs(np.asarray(got) - ref) / np.spacing(np.maximum(np.abs(ref), 1e-300))


def test_exp_is_within_one_ulp_of_numpy_on_the_normal_range():
    x = np.concatenate([np.linspace(-708.0, 0.0, 1_000_001),
                        -np.logspace(-300, np.log10(708.0), 50_001),
                        # the range-reduction boundaries (n changes at odd multiples of ln2/2)
                        np.arange(-1021, 1) * np.log(2.0) / 2.0, [0.0, -0.0]])
    assert ulps(jax.jit(exp_nonpositive)(x), np.exp(x)).max() <= 1.0


def test_exp_edges_follow_the_documented_rule():
    x = jnp.array([-np.inf, np.nan, -708.5, -745.0, -1e6])
    got = np.asarray(exp_nonpositive(x))
    assert got[0] == 0.0 and np.isnan(got[1])
    np.testing.assert_array_equal(got[2:], 0.0)  # subnormal results flush to zero


def test_log_is_within_three_ulp_of_numpy_on_positive_normal_numbers():
    t = np.concatenate([np.linspace(1.0, 64.0, 1_000_001),
                        1.0 + np.logspace(-15, -1, 50_001),
                        np.logspace(-300, 300, 50_001), 2.0 ** np.arange(-1020, 1020),
                        [np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 2.0),
                         np.nextafter(np.sqrt(2.0), 1.0)]])
    assert ulps(jax.jit(log_positive)(t), np.log(t)).max() <= 3.0


def test_log_passes_inf_and_nan_through():
    got = np.asarray(log_positive(jnp.array([np.inf, np.nan, 1.0])))
    assert got[0] == np.inf and np.isnan(got[1]) and got[2] == 0.0


@pytest.mark.parametrize("x", [-3.7, -1e-3, -300.0])
def test_derivatives_are_those_of_exp_and_log(x):
    # exact rules (custom_jvp), not the polynomials' own derivatives
    assert jax.grad(exp_nonpositive)(x) == pytest.approx(np.exp(x), rel=1e-15)
    t = np.exp(-x)
    assert jax.grad(log_positive)(t) == pytest.approx(1.0 / t, rel=1e-15)
    _, tangent = jax.jvp(exp_nonpositive, (jnp.full(3, x),), (jnp.arange(3.0),))
    np.testing.assert_allclose(tangent, np.exp(x) * np.arange(3.0), rtol=1e-15)


def test_float32_uses_jax_exp_and_log_unchanged():
    x = jnp.linspace(-80.0, 0.0, 1001, dtype=jnp.float32)
    np.testing.assert_array_equal(exp_nonpositive(x), jnp.exp(x))
    t = jnp.linspace(1.0, 8.0, 1001, dtype=jnp.float32)
    np.testing.assert_array_equal(log_positive(t), jnp.log(t))
    assert exp_nonpositive(x).dtype == jnp.float32
