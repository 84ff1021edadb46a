"""Subprocess entry: ``python -m benchmarks.worker '<json job>'`` runs one job and prints one
line ``RESULT <json>``. The driver (run_benchmarks.py) starts a fresh process per job, with
the environment the job needs (MIXBENCH_X64=0 for float32 next to gmmx, a compilation-cache
directory or none, XLA_FLAGS), so peak memory is the job's own and no job finds another's
compiled code.

Job kinds: batch, machine, case, memory, scaling, restarts, first_fit, streaming, fit_map.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np

from benchmarks.cases import (Case, flops_per_iteration, initial_params, make_data,
                              mean_log_likelihood)
from benchmarks.measure import (interleaved_rounds, load_average, peak_rss_mb, rss_mb,
                                summarize, timed)


def _case_data(case: Case, seed: int = 0):
    X64 = make_data(case.n, case.d, case.k, seed)
    init = initial_params(X64, case.k, case.covariance_type, seed)
    X = X64 if case.dtype == "float64" else X64.astype(np.float32)
    return X64, X, init


def _median(values):
    return float(np.median(values))


# ---------------------------------------------------------------------------------- machine
def job_machine(spec):
    """Peak arithmetic rates, float64 and float32: a large matmul (numpy's BLAS and XLA), and
    ns per value of XLA's exp and of the E-step's (em_reference.fast.elementwise), each summed over
    2^20 values."""
    import platform

    import jax
    import jax.numpy as jnp

    from em_reference.fast.elementwise import exp_nonpositive

    jax.config.update("jax_enable_x64", True)
    n, repeats = spec["n"], spec["repeats"]
    rng = np.random.default_rng(0)
    out = {"matmul_n": n}
    for dtype in ("float64", "float32"):
        A = rng.standard_normal((n, n)).astype(dtype)
        B = rng.standard_normal((n, n)).astype(dtype)
        Aj, Bj = jnp.asarray(A), jnp.asarray(B)
        mm = jax.jit(jnp.matmul)
        mm(Aj, Bj).block_until_ready()
        np_t = [timed(np.matmul, A, B)[0] for _ in range(repeats)]
        jx_t = [timed(lambda a, b, f=mm: f(a, b).block_until_ready(), Aj, Bj)[0]
                for _ in range(repeats)]
        flops = 2.0 * n**3
        out[f"numpy_gflops_{dtype}"] = flops / _median(np_t) / 1e9
        out[f"xla_gflops_{dtype}"] = flops / _median(jx_t) / 1e9
        out[f"peak_gflops_{dtype}"] = max(out[f"numpy_gflops_{dtype}"],
                                          out[f"xla_gflops_{dtype}"])
        # the other arithmetic an E-step cannot avoid: one exp per sample, component, restart;
        # summed, so that writing 2^20 results does not hide the exp's own cost (XLA's exp
        # fused into a reduction runs at about half the cost of the same exp in a loop fusion)
        v = jnp.asarray(-rng.uniform(0.0, 30.0, size=2**20).astype(dtype))
        for key, fn in (("xla_exp_ns", jnp.exp), ("estep_exp_ns", exp_nonpositive)):
            ex = jax.jit(lambda a, fn=fn: jnp.sum(fn(a)))
            ex(v).block_until_ready()
            ex_t = [timed(lambda a, f=ex: f(a).block_until_ready(), v)[0]
                    for _ in range(10 * repeats)]
            out[f"{key}_{dtype}"] = 1e9 * _median(ex_t) / v.size
    out.update(_machine_description())
    out["python"] = platform.python_version()
    return out


def _machine_description():
    import os
    import platform

    info = {"cpu": platform.processor() or platform.machine(), "logical_cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/cpuinfo") as fh:
            flags = next((ln for ln in fh if ln.startswith("flags")), "")
        info["simd"] = " ".join(f for f in ("avx2", "fma", "avx512f", "amx_tile")
                                if f" {f}" in flags)
    except OSError:
        pass
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    versions = {}
    for mod in ("jax", "jaxlib", "numpy", "sklearn", "gmmx", "numpyro"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing peer is reported, not fatal
            versions[mod] = None
    info["versions"] = versions
    info["platform"] = platform.platform()
    return info


# ---------------------------------------------------------------------------------- cases
def _time_case(case: Case, contenders, m1, m2, repeats, seed=0):
    from benchmarks.contenders import build

    X64, X, init = _case_data(case, seed)
    runners = [build(name, case, X, init) for name in contenders]
    load0 = load_average()
    raw = interleaved_rounds(runners, m1, m2, repeats)
    load1 = load_average()
    flops = flops_per_iteration(case.n, case.d, case.k, case.covariance_type)
    rows = []
    for name in contenders:
        rec = raw[name]
        row = {**case.to_dict(), "contender": name, **summarize(rec, m1, m2),
               "flops_per_iter": flops, "load_avg": 0.5 * (load0 + load1)}
        row["gflops"] = flops / row["s_per_iter"] / 1e9 if row["s_per_iter"] > 0 else np.nan
        row["mean_loglik"] = mean_log_likelihood(X64, *rec["params"], case.covariance_type)
        rows.append(row)
    return rows


def job_case(spec):
    case = Case(**spec["case"])
    return {"rows": _time_case(case, spec["contenders"], spec["m1"], spec["m2"],
                               spec["repeats"])}


def job_scaling(spec):
    rows = []
    for point in spec["points"]:
        point = dict(point)
        m1, m2, repeats = point.pop("m1"), point.pop("m2"), point.pop("repeats")
        case = Case(**point)
        for row in _time_case(case, spec["contenders"], m1, m2, repeats):
            row["sweep"] = spec["sweep"]
            rows.append(row)
    return {"rows": rows}


# ---------------------------------------------------------------------------------- memory
def job_memory(spec):
    """Peak RSS of one contender fitting one case (warm-up with compilation included)."""
    from benchmarks.contenders import build

    case = Case(**spec["case"])
    rss_import = rss_mb()
    X64, X, init = _case_data(case)
    if case.dtype == "float32":
        del X64
    runner = build(spec["contender"], case, X, init)
    rss_before = rss_mb()
    t, _ = timed(runner.fit, spec["m"])
    return {**case.to_dict(), "contender": spec["contender"], "rss_after_import_mb": rss_import,
            "rss_before_fit_mb": rss_before, "peak_rss_mb": peak_rss_mb(),
            "fit_added_mb": max(0.0, peak_rss_mb() - rss_before),
            "data_mb": X.nbytes / 2**20, "first_fit_s": t}


# ---------------------------------------------------------------------------------- restarts
def job_restarts(spec):
    """n_init restarts run as one vmap: marginal seconds per iteration for each n_init."""
    from em_reference import GaussianMixtureEM

    from benchmarks.contenders import Runner

    case = Case(spec["n"], spec["d"], spec["k"], spec["covariance_type"])
    X = make_data(case.n, case.d, case.k)

    def runner(n_init):
        def fit(max_iter):
            est = GaussianMixtureEM(case.k, covariance_type=case.covariance_type, tol=0.0,
                                    max_iter=max_iter, n_init=n_init,
                                    init_params="random_from_data", random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X)
            return est.weights_, est.means_, est.covariances_
        return Runner(f"n_init={n_init}", case.dtype, fit, jax=True)

    runners = [runner(r) for r in spec["n_inits"]]
    raw = interleaved_rounds(runners, spec["m1"], spec["m2"], spec["repeats"])
    rows = []
    for r, n_init in zip(runners, spec["n_inits"]):
        rows.append({**case.to_dict(), "n_init": n_init,
                     **summarize(raw[r.name], spec["m1"], spec["m2"])})
    base = rows[0]["s_per_iter"]
    for row in rows:
        row["cost_vs_one"] = row["s_per_iter"] / base
    return {"rows": rows}


# ---------------------------------------------------------------------------------- compile
def job_first_fit(spec):
    """First-fit latency in a new process: import, first fit, same data again, new data of the
    same shape; backend compilations counted with jax.monitoring (persistent-cache hits
    included, in-memory jit cache hits are not compilations)."""
    t0 = time.perf_counter()
    import jax
    from jax import monitoring

    import em_reference
    from em_reference import GaussianMixtureEM

    import_s = time.perf_counter() - t0
    if spec.get("min_compile_time") is not None:
        # em_reference/config.py sets its own threshold when it turns the cache on
        jax.config.update("jax_persistent_cache_min_compile_time_secs",
                          float(spec["min_compile_time"]))
    events = {"compiles": 0, "compile_s": 0.0, "cache_hits": 0, "cache_misses": 0}

    def on_duration(name, secs, **kw):
        if name == "/jax/core/compile/backend_compile_duration":
            events["compiles"] += 1
            events["compile_s"] += secs

    def on_event(name, **kw):
        if name == "/jax/compilation_cache/cache_hits":
            events["cache_hits"] += 1
        elif name == "/jax/compilation_cache/cache_misses":
            events["cache_misses"] += 1

    monitoring.register_event_duration_secs_listener(on_duration)
    monitoring.register_event_listener(on_event)
    n, d, k = spec["n"], spec["d"], spec["k"]
    X = make_data(n, d, k)
    X2 = make_data(n, d, k, seed=1)

    def fit(data):
        before = dict(events)
        est = GaussianMixtureEM(k, covariance_type=spec["covariance_type"], random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, _ = timed(est.fit, data)
        return t, {key: events[key] - before[key] for key in events}

    first_s, first = fit(X)
    second_s, second = fit(X)
    new_s, new = fit(X2)
    # a persistent-cache hit still passes through the backend-compile timer: subtract them
    return {"cache_dir": jax.config.jax_compilation_cache_dir or "",
            "em_reference_cache_dir": getattr(em_reference.config, "CACHE_DIR", None),
            "min_compile_time_s": jax.config.jax_persistent_cache_min_compile_time_secs,
            "import_s": import_s, "first_fit_s": first_s,
            "first_compiles": first["compiles"] - first["cache_hits"],
            "first_compile_s": first["compile_s"], "first_cache_hits": first["cache_hits"],
            "second_fit_s": second_s, "second_compiles": second["compiles"],
            "new_data_fit_s": new_s, "new_data_compiles": new["compiles"]}


# ---------------------------------------------------------------------------------- streaming
def job_streaming(spec):
    """Streaming EM at large N: peak memory of fit(X, chunk_size=C) (mode "estimator"), or of
    the functional core fed chunk-laid-out data (mode "core")."""
    import jax
    import jax.numpy as jnp

    from benchmarks.contenders import build

    n, d, k, chunk, iters = spec["n"], spec["d"], spec["k"], spec["chunk"], spec["max_iter"]
    case = Case(n, d, k, spec.get("covariance_type", "full"))
    out = {**case.to_dict(), "mode": spec["mode"], "chunk": chunk, "max_iter": iters,
           "rss_after_import_mb": rss_mb()}
    if n % chunk:
        raise ValueError("streaming job wants n a multiple of chunk")
    data = np.empty((n // chunk, chunk, d))
    make_data(n, d, k, out=data.reshape(n, d))
    init = initial_params(data.reshape(n, d), k, case.covariance_type)
    out["data_mb"] = data.nbytes / 2**20
    out["rss_after_data_mb"] = rss_mb()
    if spec["mode"] == "estimator":
        runner = build("em_reference", case, data.reshape(n, d), init)
        fit_s, params = timed(runner.fit, iters, chunk_size=chunk)
    else:
        from em_reference.fast.engine import FastEngine
        from em_reference.gaussian import GaussianFamily, GaussianParams
        from em_reference.loop import fit_em

        Xd = jax.device_put(data)
        wd = jnp.ones((n // chunk, chunk))
        del data
        out["rss_after_device_put_mb"] = rss_mb()
        batch = GaussianParams(*(jnp.asarray(init[f])[None]
                                 for f in ("weights", "means", "covariances")))

        def run():
            # tol = 0 (a fixed number of iterations): cert_tol and the scale are unused
            state = fit_em(batch, (Xd, wd), None, jnp.asarray(0.0), jnp.asarray(0.0),
                           jnp.ones(Xd.shape[-1]), engine=FastEngine(
                GaussianFamily(case.covariance_type)), max_iter=iters)
            return jax.device_get(state)

        fit_s, state = timed(run)
        params = tuple(np.asarray(leaf[0]) for leaf in state.params)
    out.update({"fit_s": fit_s, "peak_rss_mb": peak_rss_mb(), "rss_end_mb": rss_mb(),
                "weights_sum": float(np.sum(params[0]))})
    return out


# ---------------------------------------------------------------------------------- NumPyro
def job_fit_map(spec):
    """NumPyro MAP/MLE (models.fit_map: Adam then L-BFGS) on the same model, data and initial
    parameters, against EM run to convergence: time to come within ``gap`` nats per sample of
    EM's log-likelihood."""
    case = Case(**spec["case"])
    try:
        from models import fit_map, gaussian_mixture
    except ImportError as err:
        return {**case.to_dict(), "status": f"unavailable: {err}"}
    from em_reference import GaussianMixtureEM

    X64, X, init = _case_data(case)
    n, gap = case.n, spec["gap"]

    def em_fit(max_iter):
        est = GaussianMixtureEM(case.k, covariance_type=case.covariance_type, tol=0.0,
                                max_iter=max_iter, weights_init=init["weights"],
                                means_init=init["means"], precisions_init=init["precisions"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        return est

    em_fit(spec["em_iters"])  # compile
    em_s, est = timed(em_fit, spec["em_iters"])
    em_s = min(em_s, timed(em_fit, spec["em_iters"])[0])
    target = est.lower_bound_
    trace = est.lower_bounds_
    em_hit = int(np.argmax(trace >= target - gap * n)) if np.any(trace >= target - gap * n) \
        else None
    # EM's time to the target: its share of the warm fit (iterations cost the same)
    em_to_target = em_s * (em_hit + 1) / len(trace) if em_hit is not None else None

    start = {"weights": init["weights"], "means": init["means"],
             "covariances": init["covariances"]}
    kwargs = dict(covariance_type=case.covariance_type, prior=None, init=start,
                  num_steps=spec["num_steps"], learning_rate=spec["learning_rate"],
                  polish=spec.get("polish", True),
                  polish_maxiter=spec.get("polish_maxiter", 1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_map(gaussian_mixture, X, case.k, **kwargs)
    run_s = res.wall_time - res.compile_time
    tr = np.asarray(res.objective_trace, dtype=float)
    reached = np.flatnonzero(tr >= target - gap * n)
    n_adam = len(tr) - 1
    if reached.size and reached[0] < n_adam:
        # Adam steps cost the same: the share of the run before the first step on target
        # (the run time also holds the L-BFGS polish, so this favours NumPyro slightly)
        map_to_target = run_s * (reached[0] + 1) / max(res.n_steps, 1)
    elif reached.size:
        map_to_target = run_s  # only the polish got there
    else:
        map_to_target = None
    return {**case.to_dict(), "status": "ok", "gap_per_sample": gap,
            "em_loglik": float(target), "em_iters": int(len(trace) - 1),
            "em_fit_s": em_s, "em_to_target_s": em_to_target,
            "map_loglik": float(tr[-1]), "map_steps": int(res.n_steps),
            "map_wall_s": float(res.wall_time), "map_compile_s": float(res.compile_time),
            "map_run_s": float(run_s), "map_to_target_s": map_to_target,
            "map_reached": bool(reached.size), "map_message": res.diagnostics.get("message")}


def job_batch(spec):
    """Several jobs in this one process (--quick: saves the start-up of a process per job)."""
    import traceback

    out = {}
    for name, sub in spec["jobs"]:
        try:
            out[name] = JOBS[sub["kind"]](sub)
        except Exception:  # noqa: BLE001 - reported per job, the others still run
            out[name] = {"error": traceback.format_exc()[-2000:]}
    return {"batch": out}


JOBS = {"batch": job_batch, "machine": job_machine, "case": job_case, "scaling": job_scaling,
        "memory": job_memory, "restarts": job_restarts, "first_fit": job_first_fit,
        "streaming": job_streaming, "fit_map": job_fit_map}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    result = JOBS[spec["kind"]](spec)
    print("RESULT " + json.dumps(result, default=float), flush=True)


if __name__ == "__main__":
    main()
