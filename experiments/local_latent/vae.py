"""The VAEs' registration: models ``vae`` (prior N(0, I)) and ``gmm_prior_vae`` (a
K-component Gaussian-mixture prior, VaDE-style), scored on held-out data in nats.

A VAE has no exact log p(x); its cell is scored by estimates, in the same nats as a
mixture's exact log-likelihood (``score``), every column one quantity:

log_likelihood_test_per_point   IWAE-k on the test images (k = the method's
                                ``eval_particles``), a lower bound on log p(x) per image
log_likelihood_test_per_point_se    standard error of that mean over the data
                                (sqrt(sd^2 / N + Monte-Carlo se^2)); ``_mc_se`` the
                                Monte-Carlo part alone
log_likelihood_train / _test    the same bound summed over the training / test images
elbo_test_per_point (_se), rate_test_per_point, distortion_test_per_point
                                ELBO of the amortized q, KL(q(z | x) || p(z)) and
                                -E_q log p(x | z) (ELBO = -(rate + distortion))
iwae_particles                  k of the IWAE columns
approximation_gap_<part>, amortization_gap_<part>, inference_gap_<part> (each with _se)
                                Cremer et al. (2018) on the first ``gap_points`` images of
                                the training and test sets (part = train | test): log p(x) -
                                ELBO(q*), ELBO(q*) - ELBO(q), their sum; q* fitted per image
                                with the decoder frozen (models.inference_gaps)
active_units                    latent dimensions with Cov_x E_q[z | x] > 0.01 (test images)
ari_test, ari_test_gmm_pca, ari_test_bernoulli_em  (gmm_prior_vae, labelled data)
                                ARI of the test images' clusters vs their labels: the
                                prior component most responsible for the encoder's mean;
                                a GMM (em_reference, full covariances, K components) on the
                                training images' first latent_dim principal components; a
                                Bernoulli mixture (em_reference EM, K components) on pixels

The arrays stored with the cell (the second half of ``score``'s answer, stored as
``model/<name>``) are what the VAE figures draw: the IWAE ladder over k, the learning
curves, reconstructions and samples, the test images' latent means with their labels, and
the mixture prior's components.
"""

from __future__ import annotations

import numpy as np
from numpyro import handlers

from ..models_registry import model_call, register_model

# the model options a grid block may set (the decoder is Bernoulli: binary images)
ARCHITECTURE = {"latent_dim": 10, "hidden": (128, 128), "activation": "relu"}
LADDER_KS = (2, 10, 100, 1000, 5000)   # IWAE-k of the ladder figure, up to eval_particles
N_IMAGES = 16                          # reconstructions and samples stored per cell
EVALUATION = {"eval_particles": 1000, "gap_points": 100, "gap_particles": 1000,
              "local_steps": 200, "seed": 0}


def _call(problem, with_prior):
    """model(X_train[, K], **options), the hidden widths as a tuple (TOML gives a list)."""
    entry = problem.model
    args = (_as_float(problem.X_train),)
    if entry.has_components:
        args += (problem.n_components,)
    kwargs = dict(problem.model_options)
    kwargs["hidden"] = tuple(kwargs.get("hidden", ARCHITECTURE["hidden"]))
    return args, kwargs


def _as_float(X):
    return np.asarray(X, dtype=float)


def evaluation(fit) -> dict:
    """The evaluation settings the method recorded in ``fit.diagnostics["evaluation"]``."""
    return {**EVALUATION, **(fit.diagnostics or {}).get("evaluation", {})}


def _on(problem, X):
    """(model, guide, args, kwargs) of the cell's model with the data ``X`` in place."""
    model, args, kwargs = model_call(problem, False)
    return model, model.guide, (_as_float(X),) + tuple(args[1:]), kwargs


def _summary(est, prefix, out):
    n = len(est.values)
    out[prefix] = float(est.mean)
    out[prefix + "_se"] = float(np.sqrt(est.sd ** 2 / n + est.se_mean ** 2))
    return out


def score(problem, fit):
    """(the columns of the module docstring, the arrays the VAE figures draw)."""
    import models

    ev = evaluation(fit)
    k, seed = int(ev["eval_particles"]), int(ev["seed"])
    out = {"iwae_particles": k}
    model, guide, args, kwargs = _on(problem, problem.X_test)
    ks = [j for j in LADDER_KS if j < k] + [k]
    ladder = [models.evidence_per_point(model, guide, fit.params, *args, num_particles=j,
                                        seed=seed + 10 * i, **kwargs)
              for i, j in enumerate(ks)]
    test = ladder[-1]
    _summary(test.iwae, "log_likelihood_test_per_point", out)
    out["log_likelihood_test_per_point_mc_se"] = float(test.iwae.se_mean)
    out["log_likelihood_test"] = float(test.iwae.values.sum())
    _summary(test.elbo, "elbo_test_per_point", out)
    out["rate_test_per_point"] = float(test.rate.mean)
    out["distortion_test_per_point"] = float(test.distortion.mean)
    _, _, targs, _ = _on(problem, problem.X_train)
    train = models.evidence_per_point(model, guide, fit.params, *targs, num_particles=k,
                                      seed=seed + 1, **kwargs)
    out["log_likelihood_train"] = float(train.iwae.values.sum())
    out["elbo_train_per_point"] = float(train.elbo.mean)
    out["active_units"] = models.active_units(guide, fit.params, *args, **kwargs)[0]
    out.update(gap_columns(problem, fit, ev))
    if problem.model.has_components and problem.labels_test is not None:
        out.update(clustering_ari(problem, fit))
    drawn = figure_arrays(problem, fit)
    drawn.update(ladder_k=np.asarray(ks), ladder_iwae=[e.iwae.mean for e in ladder],
                 ladder_iwae_mc_se=[e.iwae.se_mean for e in ladder],
                 ladder_elbo=test.elbo.mean)
    return out, drawn


def gap_columns(problem, fit, ev) -> dict:
    """The inference-gap columns on the first ``gap_points`` training and test images, from
    one local fit over both (points are independent given the decoder)."""
    import models
    from models.local_evidence import estimate

    n = int(ev["gap_points"])
    if n == 0:
        return {}
    parts = {"train": problem.X_train[:n], "test": problem.X_test[:n]}
    model, guide, args, kwargs = _on(problem, np.concatenate(list(parts.values())))
    gaps = models.inference_gaps(model, guide, fit.params, *args,
                                 num_particles=int(ev["gap_particles"]),
                                 elbo_particles=int(ev["gap_particles"]),
                                 local_steps=int(ev["local_steps"]), seed=int(ev["seed"]) + 2,
                                 **kwargs)
    out, start = {}, 0
    for part, X in parts.items():
        rows = slice(start, start + len(X))
        start += len(X)
        for name in ("approximation_gap", "amortization_gap", "inference_gap"):
            est = getattr(gaps, name)
            _summary(estimate(est.values[rows], est.se[rows]),
                     f"{name}_{part}", out)
        out[f"gap_points_{part}"] = len(X)
    return out


def encoder_means(problem, params, X) -> np.ndarray:
    """(N, latent_dim) E_q[z | x] of the amortized guide at ``params``."""
    _, guide, args, kwargs = _on(problem, X)
    g = handlers.substitute(handlers.seed(guide, 0), data=dict(params))
    return np.asarray(handlers.trace(g).get_trace(*args, **kwargs)["z"]["fn"].mean)


def decoder_means(problem, params, n, z=None, seed=0) -> np.ndarray:
    """(n, D) E[x | z] of the decoder: at the latents ``z`` (n, L), or at n prior draws."""
    model, _, args, kwargs = _on(problem, np.zeros((n, problem.X_train.shape[1])))
    m = handlers.substitute(handlers.seed(model, seed), data=dict(params))
    if z is not None:
        m = handlers.condition(m, data={"z": np.asarray(z)})
    return np.asarray(handlers.trace(m).get_trace(*args, **kwargs)["x"]["fn"].mean)


def clustering_ari(problem, fit) -> dict:
    """ARI of the test images' clusters: the mixture prior's, and the two EM baselines."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score

    from em_reference import BernoulliMixtureEM, GaussianMixtureEM
    from models.vae import prior_responsibilities

    k, seed, labels = problem.n_components, problem.seed, problem.labels_test
    z = encoder_means(problem, fit.params, problem.X_test)
    resp = prior_responsibilities(fit.params, z)
    out = {"ari_test": float(adjusted_rand_score(labels, resp.argmax(1)))}
    latent_dim = problem.model_options.get("latent_dim", ARCHITECTURE["latent_dim"])
    pca = PCA(n_components=latent_dim, random_state=seed).fit(_as_float(problem.X_train))
    gmm = GaussianMixtureEM(k, covariance_type="full", n_init=1, random_state=seed,
                            reg_covar=1e-4).fit(pca.transform(_as_float(problem.X_train)))
    out["ari_test_gmm_pca"] = float(adjusted_rand_score(
        labels, gmm.predict(pca.transform(_as_float(problem.X_test)))))
    # the VAEs here model binary images (Bernoulli decoder), so pixels suit Bernoulli EM
    bmm = BernoulliMixtureEM(k, n_init=1, random_state=seed, prior="default",
                             tol=1e-6).fit(problem.X_train)
    out["ari_test_bernoulli_em"] = float(adjusted_rand_score(
        labels, bmm.predict(problem.X_test)))
    return out


def figure_arrays(problem, fit) -> dict:
    """Learning curves, latent means, reconstructions, samples, the mixture prior."""
    diag = fit.diagnostics or {}
    out = {name: np.asarray(diag.get(name, []), float) for name in
           ("train_objective_per_epoch", "held_out_objective_per_epoch")}
    out["best_epoch"] = np.asarray(diag.get("best_epoch", -1))
    n = min(N_IMAGES, len(problem.X_test))
    z = encoder_means(problem, fit.params, problem.X_test)
    out["latent_means"] = z
    if problem.labels_test is not None:
        out["latent_labels"] = np.asarray(problem.labels_test)
    out["originals"] = np.asarray(problem.X_test[:n], float)
    out["reconstructions"] = decoder_means(problem, fit.params, n, z[:n])
    out["samples"] = decoder_means(problem, fit.params, N_IMAGES, seed=problem.seed + 1)
    for name in ("prior_weights", "prior_means", "prior_scales"):
        if name in fit.params:
            out[name] = np.asarray(fit.params[name])
    return out


register_model(
    "vae", numpyro_model="models:vae", data_family="bernoulli", has_components=False,
    description="VAE, prior N(0, I), Bernoulli decoder (MLPs; local latents z_n).",
    options=dict(ARCHITECTURE), call=_call, score=score,
    table_columns=(("log_likelihood_test_per_point_se", "held-out / point s.e."),
                   ("elbo_test_per_point", "test ELBO / point"),
                   ("approximation_gap_test", "approximation gap"),
                   ("amortization_gap_test", "amortization gap"),
                   ("active_units", "active units")),
    figure_hints={"amortized": True})

register_model(
    "gmm_prior_vae", numpyro_model="models:gmm_prior_vae", data_family="bernoulli",
    has_components=True,
    description="VAE with a K-component Gaussian-mixture prior (VaDE-style), Bernoulli "
                "decoder.",
    options=dict(ARCHITECTURE), call=_call, score=score,
    table_columns=(("log_likelihood_test_per_point_se", "held-out / point s.e."),
                   ("elbo_test_per_point", "test ELBO / point"),
                   ("approximation_gap_test", "approximation gap"),
                   ("amortization_gap_test", "amortization gap"),
                   ("active_units", "active units"), ("ari_test", "ARI (test)"),
                   ("ari_test_gmm_pca", "ARI GMM on PCA"),
                   ("ari_test_bernoulli_em", "ARI Bernoulli EM")),
    figure_hints={"amortized": True})
