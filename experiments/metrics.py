"""Per-cell metrics, each column named for exactly one quantity.

Conventions (see the report's "Objectives" section):
- log_likelihood_*: log p(X | theta_hat) summed over the data, all constants included
  (log x! for Poisson); theta_hat is the method's point estimate (posterior mean for VI/NUTS).
- log_prior: log p(theta_hat) under the cell's prior; log_joint = log_likelihood_train + log_prior.
- elbo_em: EM's bound on log p(X | theta_hat) at the method's own final q (EM methods only).
- elbo_vi: the VI bound on the evidence log p(X) (VI methods only).
- bic = -2 ll + p log N, aic = -2 ll + 2 p, icl = bic - 2 sum_n max_k log q_nk (lower is better).
- rmse_<param>_vs_truth / _vs_em: root mean square difference over all entries after label
  alignment, in the model's comparable form (ModelEntry.comparable_params: Gaussian
  covariances as full (K, D, D) matrices); _vs_em is computed from the store (comparisons.py).
"""

from __future__ import annotations

import jax
import numpy as np
from scipy.special import logsumexp
from sklearn.metrics import adjusted_rand_score

from . import densities


def information_criteria(log_likelihood, n_params, n_samples, map_log_posterior=np.nan):
    """(bic, aic, icl) from the training log-likelihood, free parameters and N (lower is
    better; the conventions of em_reference and scikit-learn).

    map_log_posterior: sum_n max_k log q_nk, the log posterior probability of each point's
    most probable component; ICL = BIC - 2 * that (Biernacki, Celeux & Govaert 2000).
    """
    bic = -2.0 * log_likelihood + n_params * np.log(n_samples)
    aic = -2.0 * log_likelihood + 2.0 * n_params
    return float(bic), float(aic), float(bic - 2.0 * map_log_posterior)


def map_log_posterior(log_joint_matrix):
    """sum_n max_k log p(z_n = k | x_n) from the (N, K) log joint matrix."""
    from scipy.special import logsumexp

    m = np.asarray(log_joint_matrix, dtype=float)
    return float(np.sum(m.max(axis=1) - logsumexp(m, axis=1)))


def rmse(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def parameter_errors(estimate, reference, suffix):
    """{rmse_<name>_<suffix>: value} for every parameter of the same shape in both dicts.

    Both must be aligned and in the same (comparable) form: ModelEntry.comparable_params.
    """
    out = {}
    for name, value in estimate.items():
        if name in reference and np.shape(value) == np.shape(reference[name]):
            out[f"rmse_{name}_{suffix}"] = rmse(value, reference[name])
    return out


def posterior_summaries(samples):
    """{posterior_sd_<name>: mean over entries of the posterior sd} from draws {name: (S, ...)}."""
    return {f"posterior_sd_{k}": float(np.mean(np.std(np.asarray(v, float), axis=0, ddof=1)))
            for k, v in samples.items()}


def log_joint_matrix(problem, params, X):
    """(N, K) log w_k + log p(x_n | k) for built-in models, None for models without one."""
    fn = problem.model.log_joint_matrix
    return None if fn is None else fn(X, params, problem.covariance_type)


def _model_at(problem, X):
    """(model, args, kwargs) of the cell's NumPyro model with the data ``X`` in place of the
    training data (the first positional argument of the registration's call)."""
    from .models_registry import model_call

    model, args, kwargs = model_call(problem, with_prior=True)
    return model, (X,) + tuple(args[1:]), kwargs


def numpyro_log_likelihood(problem, params, X):
    """Total log-likelihood of X from the NumPyro model itself (models without a matrix)."""
    from numpyro.infer.util import log_likelihood

    model, args, kwargs = _model_at(problem, X)
    draws = {k: np.asarray(v)[None] for k, v in params.items()}
    sites = log_likelihood(model, draws, *args, **kwargs)
    return float(sum(np.sum(np.asarray(v)) for v in sites.values()))


def total_log_likelihood(problem, params, X):
    if len(X) == 0:
        return float("nan")
    mat = log_joint_matrix(problem, params, X)
    if mat is None:
        return numpyro_log_likelihood(problem, params, X)
    return densities.log_likelihood(mat)


def held_out_per_point_se(problem, params):
    """Standard error of the held-out mean log-likelihood per point over the data,
    sd_n(log p(x_n | theta)) / sqrt(M) (models with a log joint matrix; else NaN): the same
    column a local-latent model's score hook reports, so mixtures and VAEs compare with it."""
    X = problem.X_test
    mat = log_joint_matrix(problem, params, X) if len(X) > 1 else None
    if mat is None:
        return float("nan")
    per_point = logsumexp(mat, axis=1)
    return float(per_point.std(ddof=1) / np.sqrt(len(per_point)))


def numpyro_log_prior(problem, params):
    """Sum of the log densities of the model's latent sample sites at ``params`` (the prior
    written inside a NumPyro model); NaN if the parameters are not sample sites."""
    from numpyro.infer.util import log_density

    model, args, kwargs = _model_at(problem, problem.X_train)
    _, trace = log_density(model, args, kwargs, {k: np.asarray(v) for k, v in params.items()})
    latent = [s for s in trace.values() if s["type"] == "sample" and not s["is_observed"]]
    if not latent:
        return float("nan")
    return float(sum(np.sum(s["fn"].log_prob(s["value"])) for s in latent))


def prior_log_prob(prior, params) -> float:
    """prior.log_prob(params), compiled once per prior structure and parameter shapes when
    the prior is a JAX pytree (em_reference's priors): op by op, each of its few dozen small
    array operations compiled on its own, about a second per new shape."""
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(prior)):
        return float(prior.log_prob(params))  # not a pytree: its own (eager) code
    return float(_jitted_log_prob(prior, params))


@jax.jit
def _jitted_log_prob(prior, params):
    return prior.log_prob(params)


def log_prior(problem, params):
    """log p(params) under the cell's prior: the prior object's density for the built-in
    mixtures, the model's own sample-site densities for other NumPyro models."""
    if problem.prior is not None and hasattr(problem.prior, "log_prob"):
        return prior_log_prob(problem.prior, {k: np.asarray(v) for k, v in params.items()})
    if problem.model.log_joint_matrix is None or problem.model.build_prior is None:
        try:
            return numpyro_log_prior(problem, params)
        except Exception:  # noqa: BLE001  (a model we cannot evaluate this way: no column)
            return float("nan")
    return float("nan")


def fit_metrics(problem, fit, is_em):
    """Plug-in metrics of the point estimate ``fit.params`` on the cell's data (no alignment
    needed): log-likelihoods, log prior and joint, information criteria, ARI, elbo_em."""
    params, X = {k: np.asarray(v) for k, v in fit.params.items()}, problem.X_train
    out = {}
    mat = log_joint_matrix(problem, params, X)
    ll = densities.log_likelihood(mat) if mat is not None else total_log_likelihood(
        problem, params, X)
    out["log_likelihood_train"] = ll
    out["log_likelihood_test"] = total_log_likelihood(problem, params, problem.X_test)
    out["log_likelihood_test_per_point"] = (out["log_likelihood_test"] / len(problem.X_test)
                                            if len(problem.X_test) else float("nan"))
    out["log_likelihood_test_per_point_se"] = held_out_per_point_se(problem, params)
    if problem.model.held_out_zero is not None and len(problem.X_test):
        out["held_out_zero_probability"] = int(problem.model.held_out_zero(params,
                                                                          problem.X_test))
    out["log_prior"] = log_prior(problem, params)
    out["log_joint"] = ll + out["log_prior"]
    out["n_params"] = problem.model.count_params(problem.n_components, X.shape[1],
                                                 problem.covariance_type, params)
    map_lp, out["ari"], out["elbo_em"] = np.nan, np.nan, np.nan
    if mat is not None:
        q = densities.responsibilities(mat)
        map_lp = map_log_posterior(mat)
        if problem.labels_train is not None:
            out["ari"] = float(adjusted_rand_score(problem.labels_train, q.argmax(1)))
        if is_em:
            if fit.hard_assignment:
                q = np.eye(q.shape[1])[q.argmax(1)]
            out["elbo_em"] = densities.elbo_em(mat, q)
    out["bic"], out["aic"], out["icl"] = information_criteria(ll, out["n_params"], len(X),
                                                              map_lp)
    return out
