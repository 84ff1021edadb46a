"""Speed and memory benchmarks of em_reference against scikit-learn, gmmx and NumPyro.

Scripts, not tests: ``python -m benchmarks.run_benchmarks --out benchmarks/results [--quick]``
(``make bench``). Every measurement runs in a fresh subprocess (``benchmarks.worker``) so that
peak memory is that of one job, float32 runs can switch JAX's x64 mode off (gmmx needs it off)
and compilation is never served by an earlier job.

cases.py        the benchmark problems: data, shared initial parameters, FLOP model, log-likelihood
contenders.py   one runner per library: ``fit(max_iter) -> (weights, means, covariances)``
measure.py      interleaved timing rounds, marginal seconds per iteration, peak memory
worker.py       the subprocess entry: one job (a case, a sweep, a memory probe, ...) -> JSON
plots.py        the figures
run_benchmarks.py  the driver: runs the jobs, writes CSV + PNG + summary.md, checks the targets
"""
