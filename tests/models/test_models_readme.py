"""The README's models examples run as written: the mixture example (MAP-EM, then the same MAP
by gradient, certified) and a user-defined model fitted with fit_map, fit_vi and fit_nuts, whose
three answers agree."""

import contextlib
import io
import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def models_section_blocks():
    text = README.read_text()
    section = text.split("\n## models\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_user_model_example():
    block = next(b for b in models_section_blocks() if "def regression" in b)
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    m, v, n, x, y = (namespace[k] for k in ("m", "v", "n", "x", "y"))
    ols = np.polyfit(x, y, 1)[::-1]  # (a, b); flat-ish priors: the MAP is close to it
    assert m.method == "map" and m.converged, m.diagnostics["message"]
    np.testing.assert_allclose([m.params["a"], m.params["b"]], ols, atol=5e-3)
    assert v.method == "vi_full_rank" and np.isfinite(v.elbo) and v.elbo_se > 0
    assert n.status == "ok" and n.samples["b"].shape == (2 * n.n_steps,) and n.n_steps >= 1000
    assert n.diagnostics["r_hat_max"] < 1.01 and n.diagnostics["divergences"] == 0
    assert n.diagnostics["relabel_axes"] == {}  # not a mixture: nothing to relabel
    for name in ("a", "b", "sigma"):  # full-rank VI and NUTS agree on the posterior
        sd = n.samples[name].std()
        assert abs(v.params[name] - n.params[name]) < 0.5 * sd, name
        assert 0.7 < v.samples[name].std() / sd < 1.3, name


def test_readme_mixture_example():
    block = next(b for b in models_section_blocks() if "GaussianMixtureEM" in b)
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    r, em, X, resp = (namespace[k] for k in ("r", "em", "X", "resp"))
    assert r.status == "ok" and r.diagnostics["gradient_norm"] <= 1e-6
    assert r.objective_name == "log_joint"
    assert abs(r.objective_trace[-1] - em.lower_bound_) <= 1e-6 * len(X)
    assert resp.shape == (len(X), 2) and np.allclose(resp.sum(1), 1.0)
