"""experiments.compile_clock: the seconds JAX spends tracing, lowering and compiling, from
its own monitoring events (the grid's honest compile share, issue 20)."""

import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.compile_clock import CompileClock, union_seconds


def test_union_of_intervals_counts_overlaps_once():
    assert union_seconds([]) == 0.0
    assert union_seconds([(0.0, 1.0), (0.5, 2.0), (3.0, 4.0)]) == 2.0 + 1.0
    assert union_seconds([(0.0, 5.0), (1.0, 2.0)]) == 5.0  # a nested span adds nothing
    # against a brute-force grid of the same intervals
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 10, 30)
    spans = list(zip(starts, starts + rng.uniform(0, 2, 30), strict=True))
    grid = np.linspace(0, 13, 130_001)
    covered = np.zeros_like(grid, bool)
    for a, b in spans:
        covered |= (grid >= a) & (grid < b)
    assert abs(union_seconds(spans) - covered.mean() * 13) < 1e-3


def test_a_new_program_is_counted_and_a_cached_one_is_not():
    @jax.jit
    def f(x):
        return jnp.sin(x) @ jnp.cos(x).T + jnp.sum(x)

    x = jnp.ones((7, 13))
    start = time.perf_counter()
    with CompileClock() as clock:
        f(x).block_until_ready()
    elapsed = time.perf_counter() - start
    assert 0 < clock.seconds <= elapsed
    with CompileClock() as again:
        f(x).block_until_ready()
    assert again.spans == []


def test_nested_clocks_both_see_the_compile():
    with CompileClock() as outer:
        with CompileClock() as inner:
            jax.jit(lambda x: x * 3.0 + 1.0)(jnp.ones(11)).block_until_ready()
    assert inner.seconds > 0 and outer.seconds >= inner.seconds
