"""The EM loop's fast path (exponential-family features, one product for the E-step and one for
the sufficient statistics) against the plain functions and scipy, in float64 and float32.

The plain functions (gaussian.log_joint_matrix: Cholesky form; gaussian.sufficient_stats: a
direct weighted Gram matrix) are themselves checked against scipy in test_oracle.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from em_reference import GaussianParams, PoissonParams, gaussian, poisson
from em_reference.fast import kernel

COV_TYPES = ("full", "tied", "diag", "spherical")


def random_params(rng, ct, k, d, dtype, scale=1.0, spread=1.0):
    a = rng.normal(size=(k, d, d))
    full = scale**2 * (a @ np.swapaxes(a, 1, 2) / d + 0.3 * np.eye(d))
    cov = {"full": full, "tied": full[0], "diag": np.diagonal(full, axis1=1, axis2=2),
           "spherical": full[:, 0, 0]}[ct]
    return GaussianParams(jnp.asarray(rng.dirichlet(np.ones(k)), dtype),
                          jnp.asarray(spread * rng.normal(size=(k, d)), dtype),
                          jnp.asarray(cov, dtype))


def stats_of(family, moments):
    """The family's sufficient statistics (GaussianStats / PoissonStats) from the kernel's
    moments R^T T(X) (K, F), or batched (B, K, F)."""
    if isinstance(family, gaussian.GaussianFamily):
        convert = lambda m: gaussian.stats_from_moments(m, family.covariance_type)  # noqa: E731
    else:
        convert = poisson.stats_from_moments
    return convert(moments) if moments.ndim == 2 else jax.vmap(convert)(moments)


def e_pass(*args):
    """kernel.e_pass with its moments read as the family's statistics."""
    value, moments = kernel.e_pass(*args)
    return value, stats_of(args[3], moments)


def chunked(X, chunk):
    """X (N, D) as (n_chunks, chunk, D) padded with zero rows, and weights 1 / 0 (padding)."""
    n, d = X.shape
    pad = (-n) % chunk
    Xc = jnp.concatenate([X, jnp.zeros((pad, d))]).reshape(-1, chunk, d)
    wc = jnp.concatenate([jnp.ones(n), jnp.zeros(pad)]).reshape(-1, chunk)
    return Xc, wc


def stacked(restarts):
    """A list of parameter tuples as one tuple batched along a leading restart axis."""
    return type(restarts[0])(*(jnp.stack(leaves) for leaves in zip(*restarts)))


def as_full(cov, ct, k, d):
    cov = np.asarray(cov, float)
    if ct == "full":
        return cov
    if ct == "tied":
        return np.broadcast_to(cov, (k, d, d))
    if ct == "diag":
        return np.stack([np.diag(c) for c in cov])
    return np.stack([c * np.eye(d) for c in cov])


@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize("dtype, tol", [(jnp.float64, 1e-10), (jnp.float32, 2e-3)])
def test_fast_log_joint_and_stats_match_the_plain_functions(ct, dtype, tol):
    rng = np.random.default_rng(0)
    n, d, k = 300, 4, 3
    X = jnp.asarray(rng.normal(size=(n, d)), dtype)
    params = random_params(rng, ct, k, d, dtype)
    family = gaussian.GaussianFamily(ct, reg_covar=0.0)
    feats = family.features(X)
    fast = family.block_log_joint(feats, family.prepare(params))

    covs = as_full(params.covariances, ct, k, d)
    expected = np.stack([np.log(float(params.weights[j])) + stats.multivariate_normal(
        np.asarray(params.means[j], float), covs[j]).logpdf(np.asarray(X, float))
        for j in range(k)], axis=1)
    np.testing.assert_allclose(np.asarray(fast, float), expected, rtol=tol, atol=tol)

    resp = jax.nn.softmax(jnp.asarray(expected, dtype), axis=1)
    got = stats_of(family, kernel.block_moments(feats, resp))
    want = gaussian.sufficient_stats(X, resp, ct)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(np.asarray(g, float), np.asarray(w, float),
                                   rtol=tol, atol=tol * n)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_float64_fast_path_is_exact_for_tight_components_far_from_the_origin(ct):
    """The expansion x'Lx - 2 mu'Lx + mu'L mu cancels when components are tight and far away;
    in float64 the loss must stay far below what EM can notice."""
    rng = np.random.default_rng(1)
    d, k = 3, 3
    params = random_params(rng, ct, k, d, jnp.float64, scale=1e-2, spread=30.0)
    X = params.means[rng.integers(0, k, size=200)] + 1e-2 * jnp.asarray(
        rng.normal(size=(200, d)))
    family = gaussian.GaussianFamily(ct, reg_covar=0.0)
    fast = family.block_log_joint(family.features(X), family.prepare(params))
    plain = gaussian.log_joint_matrix(X, params, ct)
    finite = np.isfinite(np.asarray(plain)) & (np.asarray(plain) > -1e3)
    np.testing.assert_allclose(np.asarray(fast)[finite], np.asarray(plain)[finite],
                               rtol=0, atol=1e-6)


def test_poisson_fast_path_matches_scipy():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.poisson(4.0, size=(200, 2)), jnp.float64)
    params = PoissonParams(jnp.asarray([0.3, 0.7]), jnp.asarray([[1.0, 2.0], [6.0, 3.0]]))
    family = poisson.PoissonFamily()
    feats = family.features(x)
    fast = family.block_log_joint(feats, family.prepare(params))
    expected = np.stack([np.log(float(params.weights[j])) + stats.poisson(
        np.asarray(params.rates[j])).logpmf(np.asarray(x)).sum(axis=1) for j in range(2)], 1)
    np.testing.assert_allclose(np.asarray(fast), expected, rtol=1e-12, atol=1e-12)
    resp = jax.nn.softmax(jnp.asarray(expected), axis=1)
    got = stats_of(family, kernel.block_moments(feats, resp))
    np.testing.assert_allclose(got.nk, resp.sum(0), rtol=1e-12)
    np.testing.assert_allclose(got.sx, np.asarray(resp).T @ np.asarray(x), rtol=1e-12)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_e_pass_objective_is_the_log_likelihood(ct):
    """The loop's E-pass (chunked, with padding rows of weight 0) gives sum_n log p(x_n)."""
    rng = np.random.default_rng(3)
    n, d, k, chunk = 250, 2, 3, 64
    X = jnp.asarray(rng.normal(size=(n, d)))
    params = random_params(rng, ct, k, d, jnp.float64)
    Xc, wc = chunked(X, chunk)
    value, st = e_pass(Xc, wc, params, gaussian.GaussianFamily(ct, reg_covar=0.0), False)
    expected = gaussian.log_likelihood(X, params, ct)
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-12)
    np.testing.assert_allclose(float(jnp.sum(st.nk)), n, rtol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("family", [*(gaussian.GaussianFamily(ct, reg_covar=0.0)
                                      for ct in COV_TYPES), poisson.PoissonFamily()])
def test_feature_width_is_the_width_of_the_features(family, d):
    """feature_width (which sizes chunks and the feature cache) counts the columns that
    block_features really builds: 1 + D + D(D+1)/2 distinct moments (full, tied), 1 + 2D (diag,
    spherical), 1 + the D counts + log x! (Poisson)."""
    expected = {"full": 1 + d + d * (d + 1) // 2, "tied": 1 + d + d * (d + 1) // 2,
                "diag": 1 + 2 * d, "spherical": 1 + 2 * d}.get(
        getattr(family, "covariance_type", None), d + 2)
    assert family.feature_width(d) == expected
    assert family.features(jnp.zeros((3, d))).shape == (3, expected)


def oracle_e_pass(X, params, ct):
    """(log-likelihood, stats) of one restart from the plain functions, no features: Cholesky-
    form Gaussian log densities and direct weighted Gram matrices; for ct "poisson", scipy's
    log pmf and the responsibility-weighted sums of the counts."""
    if ct == "poisson":
        log_joint = np.log(np.asarray(params.weights)) + np.stack([stats.poisson(
            np.asarray(rate)).logpmf(np.asarray(X)).sum(axis=1) for rate in params.rates], 1)
        resp = jax.nn.softmax(jnp.asarray(log_joint), axis=1)
        stats_ = poisson.PoissonStats(jnp.sum(resp, axis=0), resp.T @ X)
        return jax.scipy.special.logsumexp(log_joint, axis=1).sum(), stats_
    log_joint = gaussian.log_joint_matrix(X, params, ct)
    resp = jax.nn.softmax(log_joint, axis=1)
    return gaussian.log_likelihood(X, params, ct), gaussian.sufficient_stats(X, resp, ct)


def random_poisson_params(rng, k, d):
    return PoissonParams(jnp.asarray(rng.dirichlet(np.ones(k))),
                         jnp.asarray(rng.uniform(1, 8, size=(k, d))))


@pytest.mark.parametrize("layout", ["chunks", "features", "one block", "tuple"])
@pytest.mark.parametrize("ct", [*COV_TYPES, "poisson"])
def test_restarts_in_one_product_equal_each_restart(ct, layout, monkeypatch):
    """vmap of e_pass over 3 different restarts runs them in one product per chunk
    (kernel.restarts_e_pass, checked to be taken); each restart's objective and statistics equal
    that restart's own plain-function E-step (padding rows of weight 0 included)."""
    rng = np.random.default_rng(5)
    n, d, k, b = 250, 3, 4, 3
    if ct == "poisson":
        X = jnp.asarray(rng.poisson(4.0, size=(n, d)), jnp.float64)
        restarts = [random_poisson_params(rng, k, d) for _ in range(b)]
        family = poisson.PoissonFamily()
    else:
        X = jnp.asarray(rng.normal(size=(n, d)))
        restarts = [random_params(rng, ct, k, d, jnp.float64, spread=2.0) for _ in range(b)]
        family = gaussian.GaussianFamily(ct, reg_covar=0.0)
    batch = stacked(restarts)
    Xc, wc = chunked(X, 64)
    given = layout in ("features", "tuple")
    data = {"chunks": (Xc, wc), "features": (jax.vmap(family.features)(Xc), wc),
            "one block": (X, jnp.ones(n)),
            "tuple": (tuple(family.features(c) for c in Xc), tuple(wc))}[layout]
    calls = []
    batched_pass = kernel.restarts_e_pass
    monkeypatch.setattr(kernel, "restarts_e_pass",
                        lambda *a: calls.append(1) or batched_pass(*a))
    values, st = jax.jit(jax.vmap(lambda p: e_pass(*data, p, family, False, given)))(batch)
    assert calls, "the restarts did not go through the one-product E-step"
    for i, params in enumerate(restarts):
        value, expected = oracle_e_pass(X, params, ct)
        np.testing.assert_allclose(float(values[i]), float(value), rtol=1e-12)
        for name in expected._fields:
            np.testing.assert_allclose(np.asarray(getattr(st, name)[i]),
                                       np.asarray(getattr(expected, name)),
                                       rtol=1e-10, atol=1e-10, err_msg=f"restart {i}: {name}")


@pytest.mark.parametrize("case", ["hard", "hard poisson", "float32 full", "one restart"])
def test_restarts_outside_the_one_product_path_are_vmapped(case, monkeypatch):
    """Hard EM (Gaussian, Poisson), float32 full (Cholesky form) and a batch of one keep the
    plain vmap of e_pass, and give each restart's own unbatched E-step."""
    rng = np.random.default_rng(6)
    n, d, k = 130, 2, 3
    b = 1 if case == "one restart" else 3
    if case == "hard poisson":
        family = poisson.PoissonFamily()
        X = jnp.asarray(rng.poisson(4.0, size=(n, d)), jnp.float64)
        restarts = [random_poisson_params(rng, k, d) for _ in range(b)]
    else:
        dtype = jnp.float32 if case == "float32 full" else jnp.float64
        family = gaussian.GaussianFamily("full", reg_covar=0.0)
        X = jnp.asarray(rng.normal(size=(n, d)), dtype)
        restarts = [random_params(rng, "full", k, d, dtype) for _ in range(b)]
    hard = case.startswith("hard")
    Xc, wc = chunked(X, 32)
    Xc, wc = Xc.astype(X.dtype), wc.astype(X.dtype)
    batch = stacked(restarts)
    monkeypatch.setattr(kernel, "restarts_e_pass", lambda *a: pytest.fail("one-product path"))
    values, st = jax.vmap(lambda p: kernel.e_pass(Xc, wc, p, family, hard))(batch)
    for i, params in enumerate(restarts):
        value, expected = kernel.e_pass(Xc, wc, params, family, hard)
        tol = 1e-5 if X.dtype == jnp.float32 else 1e-12
        np.testing.assert_allclose(float(values[i]), float(value), rtol=tol)
        for got, want in zip(jax.tree.leaves(st), jax.tree.leaves(expected)):
            np.testing.assert_allclose(np.asarray(got[i]), np.asarray(want), rtol=tol, atol=tol)


def test_e_pass_objective_stays_differentiable_with_restarts():
    """The restarts' batching rule leaves the objective differentiable: reverse and forward
    mode, alone and vmapped over restarts, give the derivatives of gaussian.log_likelihood
    (Cholesky form) in the means."""
    rng = np.random.default_rng(7)
    X = jnp.asarray(rng.normal(size=(120, 2)))
    Xc, wc = chunked(X, 32)
    family = gaussian.GaussianFamily("full", reg_covar=0.0)
    restarts = [random_params(rng, "full", 3, 2, jnp.float64) for _ in range(2)]

    def objective(means, params):
        return kernel.e_pass(Xc, wc, params._replace(means=means), family, False)[0]

    def oracle(means, params):
        return gaussian.log_likelihood(X, params._replace(means=means), "full")

    batch = stacked(restarts)
    grads = jax.vmap(jax.grad(objective))(batch.means, batch)
    direction = jnp.ones_like(restarts[0].means)
    for i, params in enumerate(restarts):
        want = jax.grad(oracle)(params.means, params)
        np.testing.assert_allclose(jax.grad(objective)(params.means, params), want, rtol=1e-10)
        np.testing.assert_allclose(grads[i], want, rtol=1e-10)
        np.testing.assert_allclose(jax.jvp(lambda m, p=params: objective(m, p),
                                           (params.means,), (direction,))[1],
                                   jnp.sum(want * direction), rtol=1e-10)


@pytest.mark.parametrize("restarts", [False, True])
def test_a_component_of_weight_zero_contributes_nothing(restarts):
    """log 0 = -inf in the log joint: its exp must be exactly 0 (the E-step's polynomial exp
    maps -inf to 0), so a third component of weight 0 leaves the objective and the other
    components' statistics as the two-component E-step has them, and gets none itself."""
    rng = np.random.default_rng(8)
    n, d = 200, 2
    X = jnp.asarray(rng.normal(size=(n, d)))
    family = gaussian.GaussianFamily("full", reg_covar=0.0)
    Xc, wc = chunked(X, 64)
    three = [random_params(rng, "full", 3, d, jnp.float64, spread=2.0) for _ in range(2)]
    three = [p._replace(weights=jnp.array([0.7, 0.3, 0.0])) for p in three]
    two = [GaussianParams(jnp.array([0.7, 0.3]), p.means[:2], p.covariances[:2]) for p in three]

    def run(batch):
        one = lambda p: e_pass(Xc, wc, p, family, False)  # noqa: E731
        if restarts:
            return jax.jit(jax.vmap(one))(stacked(batch))
        value, st = jax.jit(one)(batch[0])
        return value[None], jax.tree.map(lambda a: a[None], st)

    v3, s3 = run(three)
    v2, s2 = run(two)
    assert np.all(np.isfinite(np.asarray(v3)))
    np.testing.assert_allclose(v3, v2, rtol=1e-13)
    for name in s3._fields:
        got = np.asarray(getattr(s3, name))
        np.testing.assert_allclose(got[:, :2], np.asarray(getattr(s2, name)), rtol=1e-12,
                                   atol=1e-12, err_msg=name)
        np.testing.assert_array_equal(got[:, 2], 0.0, err_msg=name)
