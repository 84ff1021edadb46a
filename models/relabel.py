"""Label switching in mixture posteriors: permute the components of every draw to match a
reference (optimal assignment, scipy's linear_sum_assignment), or sort them by a 1-D mean."""

from __future__ import annotations

import numpy as np
from numpyro.distributions import constraints
from scipy.optimize import linear_sum_assignment


def component_axes(info, plate="components"):
    """site -> component axis (in the site's own shape) for a model with a plate named
    ``plate``: every latent site inside it, plus simplex sites of that size (mixture weights).
    Empty when the model has no such plate."""
    axes, k = {}, None
    for name, site in info.latent.items():
        for frame in site["cond_indep_stack"]:
            if frame.name == plate:
                batch_ndim = len(info.shapes[name]) - site["fn"].event_dim
                axes[name], k = batch_ndim + frame.dim, frame.size
    if k is not None:
        for name, site in info.latent.items():
            if (name not in axes and site["fn"].support is constraints.simplex
                    and info.shapes[name][-1:] == (k,)):
                axes[name] = len(info.shapes[name]) - 1
    return axes


def _features(samples, axes):
    """(S, K, F) component features, each column scaled by its sd over draws and components."""
    cols = []
    for name, axis in axes.items():
        v = np.moveaxis(np.asarray(samples[name]), axis + 1, 1)
        cols.append(v.reshape(v.shape[0], v.shape[1], -1))
    f = np.concatenate(cols, axis=2)
    sd = f.std(axis=(0, 1))
    return f / np.where(sd > 0, sd, 1.0)


def apply_permutation(samples, axes, perm):
    """Reorder components: perm (S, K), new component i of draw s is old perm[s, i]."""
    out = dict(samples)
    for name, axis in axes.items():
        v = np.asarray(samples[name])
        shape = [1] * v.ndim
        shape[0], shape[axis + 1] = perm.shape
        out[name] = np.take_along_axis(v, perm.reshape(shape), axis=axis + 1)
    return out


def relabel_to_reference(samples, axes, reference_draw=0, max_iter=20):
    """Permute every draw's components to best match a reference, then refine the reference
    as the mean of the relabelled draws until the permutations stop changing.

    samples : site -> (S, ...) draws; axes : site -> component axis (component_axes).
    reference_draw : index of the starting reference (e.g. the draw of highest density).
    Returns (relabelled samples, perm (S, K)).
    """
    f = _features(samples, axes)
    s, k, _ = f.shape
    ref = f[reference_draw]
    perm = np.tile(np.arange(k), (s, 1))
    for _ in range(max_iter):
        cost = ((ref[None, :, None, :] - f[:, None, :, :]) ** 2).sum(-1)   # (S, K_ref, K)
        new = np.stack([linear_sum_assignment(c)[1] for c in cost])
        if np.array_equal(new, perm) and _ > 0:
            break
        perm = new
        ref = np.take_along_axis(f, perm[:, :, None], axis=1).mean(0)
    return apply_permutation(samples, axes, perm), perm


def sort_by_mean(samples, axes, site="means"):
    """Order components by increasing 1-D ``site`` value in every draw (identifiability by an
    ordering constraint). The site must hold one number per component.
    Returns (relabelled samples, perm (S, K))."""
    if site not in axes:
        raise ValueError(f"ordered=True needs a component site {site!r}; the model's component "
                         f"sites are {sorted(axes)}")
    v = np.moveaxis(np.asarray(samples[site]), axes[site] + 1, 1)
    if v[0, 0].size != 1:
        raise ValueError(f"ordered=True needs 1-D {site} (one value per component), got "
                         f"{v[0, 0].size} values per component")
    perm = np.argsort(v.reshape(v.shape[0], v.shape[1]), axis=1)
    return apply_permutation(samples, axes, perm), perm
