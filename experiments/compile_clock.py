"""Seconds JAX spends turning Python into programs (tracing to a jaxpr, lowering to MLIR,
compiling or loading from the persistent cache) inside a block of code, measured from JAX's
own monitoring events rather than by timing a function twice.

A cell's ``compile_time`` column is its fit's first call minus a repeat; that misses every
program the cell's other work builds (restart census, decomposition, scoring). The clock
counts them all: the union of the time spans JAX reports for those three stages (a trace
nested in another trace is counted once).

    with CompileClock() as clock:
        ...                        # any JAX work
    clock.seconds                  # float, the union of the spans
"""

from __future__ import annotations

import threading

import jax.monitoring

# the stages jax._src.dispatch times (its JAXPR_TRACE_EVENT, JAXPR_TO_MLIR_MODULE_EVENT and
# BACKEND_COMPILE_EVENT; the last includes a persistent-cache lookup and load)
COMPILE_EVENTS = frozenset({"/jax/core/compile/jaxpr_trace_duration",
                            "/jax/core/compile/jaxpr_to_mlir_module_duration",
                            "/jax/core/compile/backend_compile_duration"})

_active: list[CompileClock] = []
_lock = threading.Lock()
_registered = False


def _listener(event, start, end, **_):
    if event in COMPILE_EVENTS and _active:
        with _lock:
            for clock in _active:
                clock.spans.append((start, end))


def union_seconds(spans) -> float:
    """Total length of the union of (start, end) intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


class CompileClock:
    """Context manager collecting the compile-stage time spans of the JAX work inside it (in
    any thread of this process); ``seconds`` is their union."""

    def __init__(self):
        self.spans: list[tuple[float, float]] = []

    def __enter__(self):
        global _registered
        with _lock:
            if not _registered:
                jax.monitoring.register_event_time_span_listener(_listener)
                _registered = True
            _active.append(self)
        return self

    def __exit__(self, *exc):
        with _lock:
            _active.remove(self)
        return False

    @property
    def seconds(self) -> float:
        return union_seconds(self.spans)
