"""The README's "Fitting a VAE" examples run as written and give sensible numbers."""

import contextlib
import io
import pathlib
import re

import numpy as np

import models

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def vae_section_blocks():
    text = README.read_text()
    section = text.split("\n## Fitting a VAE\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def run(block):
    namespace = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    return namespace, out.getvalue()


def test_readme_digits_example():
    ns, printed = run(vae_section_blocks()[0])
    ev, gaps, train, test = ns["ev"], ns["gaps"], ns["train"], ns["test"]
    assert "test log p(x) >=" in printed and "amortization" in printed
    p = train.mean(0).clip(1e-3, 1 - 1e-3)
    independent = (test * np.log(p) + (1 - test) * np.log(1 - p)).sum(1).mean()
    assert ev.iwae.mean > independent + 2.0            # the VAE beats independent pixels
    assert ev.elbo.mean <= ev.iwae.mean
    np.testing.assert_allclose(gaps.inference_gap.values,
                               gaps.approximation_gap.values + gaps.amortization_gap.values)
    assert gaps.amortization_gap.mean > 0


def test_readme_own_model_fits():
    ns, _ = run(vae_section_blocks()[1])
    X = (np.random.default_rng(0).uniform(size=(120, 6)) < 0.3).astype(float)
    fit = models.fit_vi_minibatch(ns["my_model"], X, guide=ns["my_guide"], batch_size=20,
                                  max_epochs=5)
    ev = models.evidence_per_point(ns["my_model"], ns["my_guide"], fit.params, X[:20],
                                   num_particles=20)
    assert np.all(np.isfinite(ev.iwae.values))
