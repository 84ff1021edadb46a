"""exp and log for the E-step's elementwise passes, as float64 polynomials XLA vectorises.

XLA:CPU evaluates float64 ``exp`` and ``log`` at a few cycles per value, the E-step's
biggest elementwise cost; the polynomials below are plain multiply-adds that XLA fuses and
vectorises (measurements: benchmarks/README.md). Accuracy (tests compare with numpy's exp
and log): exp within 1 ulp, log within 3 ulp.
Other dtypes use jnp.exp / jnp.log unchanged (XLA's float32 versions are polynomials already).

Derivatives are exact (custom_jvp: d exp = exp dx, d log = dx / t), not those of the
polynomials.
"""

from __future__ import annotations

from math import factorial

import jax
import jax.numpy as jnp


# Cody & Waite: LN2_HI has its low 32 bits zero, so n * LN2_HI is exact for |n| < 2^20
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700
SQRT2 = 1.41421356237309504880
# below this exp(x) is subnormal: returned as 0 (relative to the shifted maximum, exp(0) = 1,
# such a term is 1e-308 of the sum)
EXP_MIN_NORMAL_ARG = -708.0
MANTISSA_BITS = 0x000FFFFFFFFFFFFF
EXPONENT_OF_ONE = 0x3FF0000000000000


@jax.custom_jvp
def exp_nonpositive(x):
    """exp(x) for x <= 0 (the log joint minus its maximum): x < -708 gives 0, -inf gives 0,
    NaN gives NaN. Float64 by range reduction x = n ln2 + r, |r| <= ln2 / 2, and a degree-13
    Taylor polynomial in r (truncation error below 1e-17 relative); other dtypes: jnp.exp.
    x: any shape."""
    if x.dtype != jnp.float64:
        return jnp.exp(x)
    n = jnp.round(x * INV_LN2)
    r = (x - n * LN2_HI) - n * LN2_LO
    poly = jnp.asarray(1.0 / factorial(13), x.dtype)
    for j in range(12, -1, -1):
        poly = poly * r + 1.0 / factorial(j)
    n = jnp.maximum(n, -1022.0)  # also maps -inf to a finite exponent (masked below)
    two_to_n = jax.lax.bitcast_convert_type((n.astype(jnp.int64) + 1023) << 52, jnp.float64)
    return jnp.where(x < EXP_MIN_NORMAL_ARG, 0.0, poly * two_to_n)


@exp_nonpositive.defjvp
def _exp_jvp(primals, tangents):
    out = exp_nonpositive(primals[0])
    return out, out * tangents[0]


@jax.custom_jvp
def log_positive(t):
    """log(t) for positive normal float64 t (the sum of exps whose largest term is 1, so
    t >= 1 where it is used); +inf gives +inf, NaN gives NaN. Float64 by t = m 2^e with
    m in [sqrt(1/2), sqrt(2)) and log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172,
    summed to s^19 (one term less: 7 ulp); other dtypes: jnp.log. t: any shape."""
    if t.dtype != jnp.float64:
        return jnp.log(t)
    bits = jax.lax.bitcast_convert_type(t, jnp.int64)
    e = (bits >> 52) - 1023
    m = jax.lax.bitcast_convert_type((bits & MANTISSA_BITS) | EXPONENT_OF_ONE, jnp.float64)
    big = m > SQRT2
    m = jnp.where(big, 0.5 * m, m)
    e = (e + big.astype(jnp.int64)).astype(jnp.float64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    series = jnp.asarray(1.0 / 19.0, t.dtype)
    for j in range(17, 0, -2):
        series = series * s2 + 1.0 / j
    out = e * LN2_HI + (e * LN2_LO + 2.0 * s * series)
    return jnp.where(t < jnp.inf, out, t)  # +inf and NaN pass through


@log_positive.defjvp
def _log_jvp(primals, tangents):
    (t,), (dt,) = primals, tangents
    return log_positive(t), dt / t

