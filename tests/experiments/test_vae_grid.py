"""A tiny VAE and a tiny mixture-prior VAE fit and score end to end through the grid (100
binary digits, 2-d latents, a 16-unit network, 3 epochs), with the Bernoulli mixtures beside
them; the scores are checked against a hand-written IWAE estimator on the stored networks.
The same small store feeds every VAE figure."""

import numpy as np
import pytest
from scipy.special import logsumexp, softplus

from experiments import Dataset, load_dataset, register_dataset
from experiments.config import parse_config
from experiments.figures import vae as vae_figures
from experiments.datasets import DATASETS
from experiments.problem import build_problem
from experiments.runner import run_grid
from experiments.store import ResultStore

# one worker computes this module's shared fits (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_vae_grid")

TINY = {"batch_size": 16, "max_epochs": 3, "eval_particles": 10, "gap_points": 4,
        "gap_particles": 10, "local_steps": 3}
ARCH = {"latent_dim": 2, "hidden": [16]}


def tiny_grid():
    return {"methods": {"vae_elbo": TINY,
                        "vae_iwae": {**TINY, "num_particles": 3, "gap_points": 0}},
            "grid": [{"datasets": ["unit_test_digits_100"], "model": "vae",
                      "model_options": ARCH, "methods": ["vae_elbo"]},
                     {"datasets": ["unit_test_digits_100"], "model": "gmm_prior_vae",
                      "n_components": [3], "model_options": ARCH, "methods": ["vae_iwae"]},
                     {"datasets": ["unit_test_digits_100"], "n_components": [1, 3],
                      "methods": ["em"]}]}


@pytest.fixture(scope="module")
def vae_store(tmp_path_factory):
    """(store, cells) of the tiny grid, run once for the module."""
    @register_dataset("unit_test_digits_100", family="bernoulli", provenance="this test",
                      description="the first 100 binary digits")
    def digits_100():
        ds = load_dataset("digits_binary")
        return Dataset(ds.X[:100], labels=ds.labels[:100])

    cfg = parse_config(tiny_grid())
    out = tmp_path_factory.mktemp("vae_grid")
    summary = run_grid(cfg.cells, out, progress=False)
    assert summary.failed == 0, ResultStore(out).read_table()["error"].tolist()
    yield ResultStore(out), cfg.cells
    DATASETS.pop("unit_test_digits_100")


def _mlp(arrays, name, x):
    layers = sorted(int(k.rsplit("/", 1)[1]) for k in arrays
                    if k.startswith(f"param/{name}$params/weights/"))
    for i in layers:
        x = x @ arrays[f"param/{name}$params/weights/{i}"] + \
            arrays[f"param/{name}$params/biases/{i}"]
        if i < layers[-1]:
            x = np.maximum(x, 0.0)
    return x


def hand_iwae(arrays, X, k, rng):
    """(N,) IWAE-k of a standard-normal-prior VAE from its stored networks, in numpy."""
    h = _mlp(arrays, "encoder", X)
    L = h.shape[1] // 2
    loc, scale = h[:, :L], softplus(h[:, L:]) + 1e-4
    z = loc + scale * rng.normal(size=(k,) + loc.shape)                     # (k, N, L)
    log_q = (-0.5 * ((z - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)).sum(-1)
    log_prior = (-0.5 * z ** 2 - 0.5 * np.log(2 * np.pi)).sum(-1)
    logits = _mlp(arrays, "decoder", z)
    log_lik = (X * -np.logaddexp(0, -logits) + (1 - X) * -np.logaddexp(0, logits)).sum(-1)
    return logsumexp(log_lik + log_prior - log_q, axis=0) - np.log(k)


def test_vae_cells_are_scored_in_nats(vae_store):
    store, cells = vae_store
    table = store.read_table()
    vae = table[table["model"] == "vae"].iloc[0]
    problem = build_problem(next(c for c in cells if c.model == "vae"))
    arrays = store.load_arrays(vae["key"])
    # an independent estimator on the stored networks agrees within Monte-Carlo error
    X = problem.X_test.astype(float)
    mine = np.mean([hand_iwae(arrays, X, 10, np.random.default_rng(s)) for s in range(20)],
                   axis=0)
    assert vae["iwae_particles"] == 10
    se = np.hypot(vae["log_likelihood_test_per_point_mc_se"], 0.05)
    assert abs(vae["log_likelihood_test_per_point"] - mine.mean()) < 5 * se
    assert vae["log_likelihood_test"] == pytest.approx(
        vae["log_likelihood_test_per_point"] * len(X), rel=1e-10)
    assert vae["log_likelihood_test_per_point_se"] >= vae["log_likelihood_test_per_point_mc_se"]
    # IWAE-k >= ELBO on the same draws (Jensen), ELBO = -(rate + distortion)
    assert vae["log_likelihood_test_per_point"] >= vae["elbo_test_per_point"]
    assert vae["elbo_test_per_point"] == pytest.approx(
        -(vae["rate_test_per_point"] + vae["distortion_test_per_point"]), abs=1e-8)
    for part in ("train", "test"):
        assert vae[f"inference_gap_{part}"] == pytest.approx(
            vae[f"approximation_gap_{part}"] + vae[f"amortization_gap_{part}"], abs=1e-8)
        assert vae[f"gap_points_{part}"] == 4 and vae[f"amortization_gap_{part}_se"] > 0
    assert 0 <= vae["active_units"] <= 2 and vae["epochs"] >= 1
    assert np.array_equal(arrays["model/ladder_k"], [2, 10])
    assert arrays["model/ladder_iwae"][-1] == vae["log_likelihood_test_per_point"]
    assert arrays["model/reconstructions"].shape == (16, 64)
    assert ((arrays["model/samples"] > 0) & (arrays["model/samples"] < 1)).all()


def test_mixture_prior_vae_clusters_beside_em_baselines(vae_store):
    store, _ = vae_store
    table = store.read_table().set_index("model")
    row = table.loc["gmm_prior_vae"]
    assert row["method"] == "vae_iwae" and row["n_components"] == 3
    for col in ("ari_test", "ari_test_gmm_pca", "ari_test_bernoulli_em"):
        assert -1 <= row[col] <= 1
    arrays = store.load_arrays(row["key"])
    assert arrays["model/prior_means"].shape == (3, 2)
    assert arrays["model/prior_weights"].sum() == pytest.approx(1.0)
    # the mixtures of the same data: exact log-likelihoods in the same column
    em = table.loc["bernoulli_mixture"].set_index("n_components")
    assert np.isfinite(em["log_likelihood_test_per_point"]).all()


@pytest.mark.parametrize("figure", vae_figures.FIGURES, ids=lambda f: f.__name__)
def test_every_vae_figure_draws_from_the_tiny_store(vae_store, figure, tmp_path):
    store, _ = vae_store
    info = figure(store, store.read_table(), tmp_path)
    assert info is not None and info.png.stat().st_size > 0 and info.pdf.is_file()
    assert info.caption
    assert info.min_text_pt >= 8 and info.text_clashes == (), info.text_clashes
    assert info.legends_over_data == (), info.legends_over_data


def test_vae_figures_skip_a_store_without_vaes(vae_store, tmp_path):
    store, _ = vae_store
    table = store.read_table()
    mixtures_only = table[table["model"] == "bernoulli_mixture"]
    assert all(f(store, mixtures_only, tmp_path) is None for f in vae_figures.FIGURES)


def test_report_lists_the_vae_figures(vae_store):
    from experiments.report import write_report

    store, _ = vae_store
    write_report(store.root)
    text = (store.root / "report.md").read_text()
    for stem in ("vae_ladder", "vae_gaps", "vae_learning_curves", "vae_images", "vae_latent"):
        assert f"{stem}.png" in text
