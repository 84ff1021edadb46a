"""cavi, vi_low_rank, vi_dais, vi_iaf, vi_iwae, vi_renyi, laplace, evidence: variational Bayes
by hand, three more NumPyro guides, two more objectives, the Laplace approximation, and the
evidence log p(X) every bound is judged by.

cavi
    em_reference's coordinate-ascent VB (em_reference.cavi: Bishop PRML 10.2 for the Gaussian
    mixture, its Gamma-rate analogue for the Poisson one, the Beta one for the Bernoulli one)
    with the cell's prior, the very object MAP-EM and the NumPyro models use, and Dirichlet
    weights (the NumPyro models' prior; a Dirichlet-process bound would bound another model's
    evidence). The estimators take no
    initial parameters, only a rule for the initial responsibilities: ``init_params="kmeans"``
    with ``random_state=seed`` runs the one k-means (KMeans(K, n_init=1, random_state=seed))
    that built the cell's shared initialisation, so CAVI starts from the same partition. Its
    ELBO (``lower_bound_``: the full bound over (z, weights, theta), every constant kept) is
    the row's ``elbo_vi``, beside NumPyro's bounds over theta with z summed out; it is exact,
    so ``elbo_vi_se`` is 0. The point estimate: E_q[weights], the factors' means m_k and
    covariances Psi_k / nu_k = E_q[Lambda_k]^-1 (scikit-learn's ``covariances_``, as
    sklearn_vb), or the rates' or pixel probabilities' posterior means.
vi_low_rank
    models.fit_vi with a low-rank-plus-diagonal normal guide (AutoLowRankMultivariateNormal).
vi_dais
    models.fit_vi with AutoDAIS (differentiable annealed importance sampling: ``dais_steps``
    annealed HMC-like steps from a ``base_dist`` Gaussian), the one non-Gaussian q; its ELBO
    bounds log p(X) on the space extended by the steps' momenta, so its kl_gap is a KL
    divergence there (at least the one over theta).
vi_iaf
    models.fit_vi with inverse autoregressive flows (``num_flows``) on a normal, shifted by a
    learned location that starts at the shared start (models.vi_fit.AutoIAFNormalFromStart).
vi_iwae, vi_renyi
    models.fit_vi trained on Renyi's bound instead of the ELBO (objective "renyi"): the IWAE
    bound (alpha = 0, Burda et al. 2016) or Renyi's alpha-bound (Li & Turner 2016; default
    alpha 0.5), each with ``num_particles`` draws per estimate, on a mean-field (default) or
    full-rank normal guide. Judged as every q is, by the standard ELBO of the fitted q
    (``elbo_vi``, so kl_gap = KL(q || p(theta | X))); the trained bound at that q is the
    row's ``renyi_bound`` (``renyi_bound_se``), tighter than the ELBO, and its distance
    below the evidence ``renyi_gap`` (comparisons).
laplace
    models.fit_laplace: the Gaussian N(u*, H^-1) at the mode of the log density on the
    unconstrained space, from the shared start, judged by its ELBO (estimated by Monte Carlo)
    as the guides are; fit_status "not_converged" when the mode's gradient certificate fails.
evidence
    NUTS (models.fit_nuts, from the shared start), then models.log_evidence: bridge sampling
    on those draws with the K!-symmetrised proposal. Columns ``log_evidence`` and
    ``log_evidence_se`` (its Monte-Carlo standard error). fit_status is "failed_to_mix" when
    the chains did not mix (the nuts method's flag) and "not_converged" when the bridge
    iteration did not; such a row is never a reference (comparisons.kl_gaps).

None of these is in a grid block's ``methods = "all"`` (``in_all=False``): the evidence
costs a long NUTS run, and the default grid names them where they are cheap.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Annotated, Literal

from ..models_registry import model_call
from ..specs import Count, NonNegative, NonNegativeInt, OpenFraction, Positive, Range
from .em_methods import fitted_params, timed_fit
from .numpyro_methods import _fit, _models, global_only
from .registry import make_fit, register_method

def has_cavi(model) -> bool:
    return model.cavi_estimator is not None


@register_method("cavi", colour="#AA4499", models=has_cavi, kind="posterior", uses_prior=True,
                 in_all=False, bound_over="(z, θ)",
                 description="variational Bayes by coordinate ascent (em_reference CAVI, "
                             "Bishop PRML 10.2): the full ELBO over (z, weights, theta), exact")
def fit_cavi(problem, tol: NonNegative = 1e-8, max_iter: Count = 10_000):
    # tol: on the ELBO's change per training sample (em_reference's convention)
    def make():
        return problem.model.cavi_estimator(problem, tol=tol, max_iter=max_iter)

    est, wall, compile_time = timed_fit(make, problem.X_train)
    return make_fit("cavi", fitted_params(est, problem.model.param_names), "elbo_vi",
                    est.lower_bounds_, int(est.n_iter_), bool(est.converged_), wall,
                    compile_time, elbo=float(est.lower_bound_), elbo_se=0.0)


@register_method("vi_low_rank", colour="#44AA99",
                 models=global_only, kind="posterior", uses_prior=True,
                 in_all=False, bound_over="θ", cost_rank=0,
                 description="VI with a low-rank-plus-diagonal normal guide (models.fit_vi)")
def fit_vi_low_rank(problem, num_steps: Count = 3000, learning_rate: Positive = 0.01,
                    num_samples: Count = 1000, elbo_particles: Count = 2000,
                    rank: Count | None = None):
    # rank None: fit_vi's default, the square root of the guide's dimension
    return _fit("fit_vi", problem, True, guide="low_rank", rank=rank, num_steps=num_steps,
                learning_rate=learning_rate, num_samples=num_samples,
                elbo_particles=elbo_particles)


@register_method("vi_dais", colour="#CC3311", models=global_only, kind="posterior", uses_prior=True,
                 in_all=False, bound_over="θ", cost_rank=0,
                 description="VI with differentiable annealed importance sampling "
                             "(models.fit_vi, AutoDAIS): a non-Gaussian q")
def fit_vi_dais(problem, num_steps: Count = 3000, learning_rate: Positive = 0.01,
                num_samples: Count = 1000, elbo_particles: Count = 2000,
                dais_steps: Count = 4, base_dist: Literal["diagonal", "cholesky"] = "diagonal"):
    return _fit("fit_vi", problem, True, guide="dais", num_steps=num_steps,
                learning_rate=learning_rate, num_samples=num_samples,
                elbo_particles=elbo_particles,
                guide_options={"K": dais_steps, "base_dist": base_dist})


@register_method("vi_iaf", colour="#997700", models=global_only, kind="posterior", uses_prior=True,
                 in_all=False, bound_over="θ", cost_rank=0,
                 description="VI with an inverse-autoregressive-flow guide (models.fit_vi, "
                             "AutoIAFNormal started at the shared start)")
def fit_vi_iaf(problem, num_steps: Count = 3000, learning_rate: Positive = 0.01,
               num_samples: Count = 1000, elbo_particles: Count = 2000, num_flows: Count = 3):
    return _fit("fit_vi", problem, True, guide="iaf", num_steps=num_steps,
                learning_rate=learning_rate, num_samples=num_samples,
                elbo_particles=elbo_particles, guide_options={"num_flows": num_flows})


# 0 <= alpha < 1: between the IWAE bound (0) and the ELBO (1), tighter than the ELBO
RenyiAlpha = Annotated[float, Range(ge=0, lt=1)]
Particles = Annotated[int, Range(ge=2)]  # with one draw per estimate Renyi's bound is the ELBO


def _renyi(problem, alpha, guide, num_particles, num_steps, learning_rate, num_samples,
           elbo_particles):
    fit = _fit("fit_vi", problem, True, guide=guide, objective="renyi", alpha=alpha,
               num_particles=num_particles, num_steps=num_steps, learning_rate=learning_rate,
               num_samples=num_samples, elbo_particles=elbo_particles)
    d = fit.diagnostics
    return dataclasses.replace(fit, extra={
        **fit.extra, "renyi_bound": d["renyi_bound"], "renyi_bound_se": d["renyi_bound_se"],
        "renyi_alpha": d["renyi_alpha"], "renyi_particles": d["renyi_particles"]})


@register_method("vi_iwae", colour="#004488", models=global_only, kind="posterior", uses_prior=True,
                 in_all=False, bound_over="θ", cost_rank=0,
                 description="VI trained on the IWAE bound (models.fit_vi, Renyi alpha 0), "
                             "judged by its ELBO and its IWAE bound")
def fit_vi_iwae(problem, num_particles: Particles = 8,
                guide: Literal["mean_field", "full_rank"] = "mean_field",
                num_steps: Count = 3000, learning_rate: Positive = 0.01,
                num_samples: Count = 1000, elbo_particles: Count = 2000):
    return _renyi(problem, 0.0, guide, num_particles, num_steps, learning_rate, num_samples,
                  elbo_particles)


@register_method("vi_renyi", colour="#009988",
                 models=global_only, kind="posterior", uses_prior=True,
                 in_all=False, bound_over="θ", cost_rank=0,
                 description="VI trained on Renyi's alpha-bound (models.fit_vi), judged by "
                             "its ELBO and its Renyi bound")
def fit_vi_renyi(problem, alpha: RenyiAlpha = 0.5, num_particles: Particles = 8,
                 guide: Literal["mean_field", "full_rank"] = "mean_field",
                 num_steps: Count = 3000, learning_rate: Positive = 0.01,
                 num_samples: Count = 1000, elbo_particles: Count = 2000):
    return _renyi(problem, float(alpha), guide, num_particles, num_steps, learning_rate,
                  num_samples, elbo_particles)


@register_method("laplace", colour="#EE3377", models=global_only, kind="posterior", uses_prior=True,
                 in_all=False, bound_over="θ",
                 description="the Laplace approximation on the unconstrained space "
                             "(models.fit_laplace), judged by its ELBO")
def fit_laplace(problem, maxiter: Count = 2000, num_samples: Count = 1000,
                elbo_particles: Count = 2000):
    return _fit("fit_laplace", problem, True, maxiter=maxiter, num_samples=num_samples,
                elbo_particles=elbo_particles)


@register_method("evidence", colour="#DDCC77",
                 models=global_only, kind="posterior", uses_prior=True,
                 in_all=False, cost_rank=0,
                 description="the evidence log p(X): bridge sampling on NUTS draws "
                             "(models.log_evidence); flagged when its chains did not mix")
def fit_evidence(problem, num_warmup: NonNegativeInt = 500, num_samples: Count = 1000,
                 num_chains: Count = 4, max_samples: Count | None = None,
                 chain_method: Literal["sequential", "vectorized"] = "sequential",
                 max_permutations: Count = 720, target_accept_prob: OpenFraction = 0.8,
                 dense_mass: bool = False):
    # max_samples None: fit_nuts's cap (10 x num_samples draws per chain while not mixed);
    # target_accept_prob and dense_mass: NUTS's step size and mass matrix, for posteriors
    # whose chains diverge at the defaults
    nuts = _fit("fit_nuts", problem, True, num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, max_samples=max_samples, chain_method=chain_method,
                target_accept_prob=target_accept_prob, dense_mass=dense_mass)
    model, args, kwargs = model_call(problem, True)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # the iteration's and the label switching's warnings are in the row's columns
        warnings.simplefilter("ignore", RuntimeWarning)
        ev = _models().log_evidence(model, *args, posterior=nuts, seed=problem.seed,
                                    max_permutations=max_permutations, model_kwargs=kwargs)
    seconds = time.perf_counter() - start
    bridged = bool(ev.diagnostics.get("converged", False))
    status = ("failed_to_mix" if nuts.status != "ok" else
              "ok" if bridged else "not_converged")
    extra = {"log_evidence": float(ev.log_evidence),
             "log_evidence_se": float(ev.log_evidence_se),
             "evidence_label_switching": ev.diagnostics.get("label_switching"),
             "evidence_ess_posterior": float(ev.diagnostics.get("ess_posterior", "nan")),
             "evidence_bridge_time": seconds}
    return make_fit("evidence", nuts.params, None, [], int(nuts.n_steps), status == "ok",
                    nuts.wall_time + seconds, nuts.compile_time, diagnostics=nuts.diagnostics,
                    extra=extra, status=status)
