"""Figures of models with local latents (VAEs) beside the exact mixtures of the same data:
the log p(x) ladder, the inference gaps, learning curves, images, the 2-d latent space.

They read the arrays a VAE cell stores (``model/...``, experiments/local_latent/vae.py) and
the table's columns; every function takes (store, rows of the table, out_dir) and returns a
FigureInfo, or None when the rows hold nothing it can draw.
"""

from __future__ import annotations

import json

import numpy as np

from .data import arrays_of, hints_of, k_text, ok_rows
from .style import new_figure, save

MAX_PANELS = 6


def amortized_rows(df):
    """The ok rows of models that register the ``amortized`` figure hint, seed 0 first."""
    df = ok_rows(df)
    if df.empty:
        return df
    keep = [bool(hints_of(row).get("amortized")) for _, row in df.iterrows()]
    return df[keep].sort_values(["dataset", "model", "method", "seed"], kind="stable")


def _label(row) -> str:
    """ "gmm_prior_vae K=10 L=2 / vae_elbo": model, its K, latent size, method."""
    k = "" if row["n_components"] != row["n_components"] else f" K={int(row['n_components'])}"
    try:
        latent = json.loads(row.get("model_options") or "{}").get("latent_dim")
    except (TypeError, ValueError):
        latent = None
    return f"{row['model']}{k}{'' if latent is None else f' L={latent}'} / {row['method']}"


def _title(row) -> str:
    """A panel's title on two lines (a third of a page holds ~25 characters at 8 pt): the
    model with its K and latent size, then the method and the dataset."""
    model, method = _label(row).split(" / ")
    return f"{model}\n{method}, {row['dataset']}"


def _drawn(store, row) -> dict:
    return arrays_of(store, row["key"], "model")


def _panels(n, width=3.6, height=3.0):
    ncols = min(3, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = new_figure(nrows, ncols, width=width * ncols, height=height * nrows)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)[:n]


def ladder_figure(store, df, out_dir):
    """IWAE-k against k for every VAE cell (its ELBO at k = 1: IWAE-1 is the ELBO), with a
    line at each mixture's exact held-out log-likelihood per image (K = 1: independent
    pixels), one panel per dataset."""
    vae = amortized_rows(df)
    if vae.empty:
        return None
    rows = ok_rows(df)
    datasets = list(dict.fromkeys(vae["dataset"]))[:MAX_PANELS]
    fig, axes = _panels(len(datasets), width=7.0, height=3.8)
    for ax, dataset in zip(axes, datasets, strict=True):
        mix = rows[(rows["dataset"] == dataset) & (rows["method"] == "em")
                   & ~rows["key"].isin(vae["key"])]
        mix = mix[mix["seed"] == mix["seed"].min()].sort_values("n_components")
        for i, (_, m) in enumerate(mix.iterrows()):
            v = float(m["log_likelihood_test_per_point"])
            ax.axhline(v, color="0.5", linestyle=(0, (4, 2)) if i else "-", linewidth=0.9)
            ax.annotate(("independent pixels" if m["n_components"] == 1 else k_text(m))
                        + " (exact)", (1.0, v), xycoords=("axes fraction", "data"),
                        ha="right", va="bottom", fontsize=8, color="0.35")
        for i, (_, r) in enumerate(vae[vae["dataset"] == dataset].iterrows()):
            a = _drawn(store, r)
            if "ladder_k" not in a:
                continue
            k = np.r_[1, a["ladder_k"]]
            v = np.r_[a["ladder_elbo"], a["ladder_iwae"]]
            se = np.r_[0.0, a["ladder_iwae_mc_se"]]  # the ELBO's MC error is not stored
            ax.errorbar(k, v, yerr=se, marker="o", markersize=3, capsize=2,
                        color=f"C{i % 10}", label=_label(r))
        ax.set_xscale("log")
        ax.set_xlabel("importance samples k (k = 1: the ELBO)")
        ax.set_ylabel("held-out log p(x) per image (nats)")
        ax.set_title(dataset)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    caption = ("The log p(x) ladder on held-out images: grey lines are the Bernoulli "
               "mixtures' exact log-likelihoods by K (K = 1: independent pixels); each curve "
               "is a VAE's IWAE-k lower bound against k, starting from its ELBO at k = 1, "
               "with Monte-Carlo standard errors.")
    return save(fig, out_dir, "vae_ladder", caption)


def gaps_figure(store, df, out_dir):
    """Stacked bars: approximation gap + amortization gap = inference gap, train vs test."""
    vae = amortized_rows(df)
    if vae.empty or "approximation_gap_test" not in vae:
        return None
    vae = vae[np.isfinite(vae["approximation_gap_test"].astype(float))].head(MAX_PANELS * 2)
    if vae.empty:
        return None
    fig, axes = new_figure(1, 1, width=max(4.0, 1.6 * len(vae) + 1.5), height=3.6)
    ax = axes[0, 0]
    labels = []
    for i, (_, r) in enumerate(vae.iterrows()):
        for j, part in enumerate(("train", "test")):
            x = 3 * i + j
            approx = float(r[f"approximation_gap_{part}"])
            amort = float(r[f"amortization_gap_{part}"])
            ax.bar(x, approx, color="C0", label="approximation gap" if x == 0 else None)
            ax.bar(x, amort, bottom=approx, color="C1",
                   label="amortization gap" if x == 0 else None)
            ax.errorbar(x, approx + amort, yerr=float(r[f"inference_gap_{part}_se"]),
                        color="black", capsize=3)
            labels.append((x, part))
        # the pair's model and method, centred under its two bars
        model, method = _label(r).split(" / ")
        ax.text(3 * i + 0.5, -0.12, f"{model}\n{method}", transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize=8)
    ax.set_xticks([x for x, _ in labels], [t for _, t in labels], fontsize=8)
    ax.set_ylabel("nats per image")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.legend()
    caption = ("Inference gap of each VAE (Cremer, Li & Duvenaud 2018) on training and test "
               "images: log p(x) − ELBO(q*) (approximation, the factorised Gaussian's limit) "
               "stacked under ELBO(q*) − ELBO(q) (amortization, the encoder's); error bars: "
               "standard error of the total. EM's E-step is exact: its gap is 0.")
    return save(fig, out_dir, "vae_gaps", caption)


def learning_curves_figure(store, df, out_dir):
    """Training and held-out objective per epoch, the early-stopping point marked."""
    vae = amortized_rows(df).head(MAX_PANELS)
    curves = [(r, _drawn(store, r)) for _, r in vae.iterrows()]
    curves = [(r, a) for r, a in curves if len(a.get("train_objective_per_epoch", ())) > 0]
    if not curves:
        return None
    fig, axes = _panels(len(curves))
    for ax, (r, a) in zip(axes, curves, strict=True):
        train, held = a["train_objective_per_epoch"], a["held_out_objective_per_epoch"]
        epochs = np.arange(1, len(train) + 1)
        ax.plot(epochs, train, color="C0", label="training")
        if len(held):
            ax.plot(epochs[:len(held)], held, color="C1", label="held-out")
        best = int(a.get("best_epoch", -1))
        if 0 <= best < len(train):
            ax.axvline(best + 1, color="black", linestyle="--", linewidth=0.9,
                       label=f"kept: epoch {best + 1}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{r.get('objective_name', 'bound')} per image (nats)")
        ax.set_title(_title(r), fontsize=8)
        ax.legend(fontsize=8)
    caption = ("Learning curves: the training bound per image (the mean of the epoch's "
               "minibatch estimates) and the held-out bound per image after each epoch; the "
               "dashed line marks the epoch whose parameters were kept (early stopping).")
    return save(fig, out_dir, "vae_learning_curves", caption)


def _image_shape(d):
    side = int(round(np.sqrt(d)))
    return (side, side) if side * side == d else (1, d)


def _grid(images, shape, ncols):
    """(rows * h, ncols * w) mosaic of ``images`` (n, h * w), one pixel of gap."""
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    h, w = shape
    out = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1), 0.15)  # light grey gaps
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = img.reshape(shape)
    return out


def images_figure(store, df, out_dir):
    """Test images, their reconstructions E[x | E_q z] and samples E[x | z ~ p(z)]."""
    vae = amortized_rows(df).head(MAX_PANELS)
    shown = [(r, a) for r, a in ((r, _drawn(store, r)) for _, r in vae.iterrows())
             if "reconstructions" in a]
    if not shown:
        return None
    fig, axes = new_figure(len(shown), 3, width=7.5, height=2.6 * len(shown))
    for row_axes, (r, a) in zip(axes, shown, strict=True):
        shape = _image_shape(a["originals"].shape[1])
        for ax, name in zip(row_axes, ("originals", "reconstructions", "samples"), strict=True):
            ax.imshow(_grid(a[name], shape, 4), cmap="gray_r", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_title(f"{name}\n{_label(r)}" if name == "originals" else name, fontsize=8)
    caption = ("Held-out images (left), their reconstructions (pixel probabilities of the "
               "decoder at the encoder's mean) and samples (pixel probabilities at draws of "
               "the prior), one row per VAE cell.")
    return save(fig, out_dir, "vae_images", caption)


def _projection(z):
    """(centre (L,), basis (L, 2)): the identity for 2-d latents, else the top two
    principal directions of the latent means."""
    if z.shape[1] == 2:
        return np.zeros(2), np.eye(2)
    centre = z.mean(0)
    _, _, vt = np.linalg.svd(z - centre, full_matrices=False)
    return centre, vt[:2].T


def latent_figure(store, df, out_dir):
    """Encoder means of the test images coloured by label, with the mixture prior's
    components as 2-standard-deviation ellipses (2-d latents as they are, else projected
    on their first two principal directions)."""
    vae = amortized_rows(df)
    shown = [(r, a) for r, a in ((r, _drawn(store, r)) for _, r in vae.iterrows())
             if "latent_means" in a and a["latent_means"].shape[1] >= 2]
    shown.sort(key=lambda ra: (ra[1]["latent_means"].shape[1] != 2, "prior_means" not in ra[1]))
    shown = shown[:MAX_PANELS]
    if not shown:
        return None
    fig, axes = _panels(len(shown), width=3.8, height=3.6)
    t = np.linspace(0, 2 * np.pi, 100)
    for ax, (r, a) in zip(axes, shown, strict=True):
        z = a["latent_means"]
        centre, basis = _projection(z)
        p = (z - centre) @ basis
        labels = a.get("latent_labels")
        ax.scatter(p[:, 0], p[:, 1], s=4, c=None if labels is None else labels,
                   cmap="tab10", vmin=-0.5, vmax=9.5, alpha=0.7, linewidths=0)
        if "prior_means" in a:
            for mu, s, w in zip(a["prior_means"], a["prior_scales"], a["prior_weights"],
                                strict=True):
                m = (mu - centre) @ basis
                cov = basis.T @ np.diag(s ** 2) @ basis
                vals, vecs = np.linalg.eigh(cov)
                ring = m[:, None] + 2 * (vecs * np.sqrt(np.maximum(vals, 0))) @ np.stack(
                    [np.cos(t), np.sin(t)])
                ax.plot(ring[0], ring[1], color="black", linewidth=0.3 + 3 * float(w))
        if z.shape[1] == 2:
            ax.set_xlabel("z1")
            ax.set_ylabel("z2")
        else:
            ax.set_xlabel(f"1st principal axis of {z.shape[1]}-d z")
            ax.set_ylabel("2nd principal axis")
        ax.set_title(_title(r), fontsize=8)
    caption = ("Latent space: the encoder's mean E_q[z | x] of every held-out image, coloured "
               "by its label; black ellipses: the mixture prior's components at 2 standard "
               "deviations (line width grows with the weight). Latents of more than two "
               "dimensions are projected on their first two principal directions.")
    return save(fig, out_dir, "vae_latent", caption)


FIGURES = (ladder_figure, gaps_figure, learning_curves_figure, images_figure, latent_figure)
