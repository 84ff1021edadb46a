"""The one result type every fitting routine returns, and the error a failed fit raises."""

from __future__ import annotations

from dataclasses import dataclass, field

import arviz as az
import numpy as np

# what a fit certifies: "ok" = MAP/MLE at a certified optimum (gradient certificate), VI at an
# ELBO plateau within its Monte-Carlo error, NUTS chains that mixed (r_hat, ESS, no
# divergences); "not_converged" = an optimiser (MAP, MLE, VI) that did not certify its point;
# "failed_to_mix" = NUTS draws that missed the mixing targets within the caps
STATUSES = ("ok", "not_converged", "failed_to_mix")


class FitError(RuntimeError):
    """A fit that produced a non-finite objective or non-finite parameters.

    Raised instead of returning a result, so that a failed fit is never mistaken for a bad one.
    """


@dataclass(frozen=True)
class FitResult:
    """What ``fit_map``, ``fit_vi`` and ``fit_nuts`` return.

    method          "map", "mle" (model without latent sample sites), "vi_mean_field",
                    "vi_full_rank", "vi_low_rank", "vi_custom" or "nuts".
    params          site name -> constrained point estimate: the MAP / MLE point, or the
                    posterior mean of ``samples`` for VI and NUTS.
    samples         site name -> draws with the draw axis first (S, *site_shape); for VI drawn
                    from the fitted guide, for NUTS all chains concatenated (after relabelling);
                    None for MAP/MLE.
    objective_name  what ``objective_trace`` holds: "log_joint" (MAP), "log_likelihood" (MLE),
                    "elbo_vi" (VI, one-particle estimates unless num_particles says otherwise),
                    None (NUTS).
    objective_trace (n_steps,) the objective (not the loss) at every optimiser step of the kept
                    restart; for MAP/MLE the last entry is the objective at ``params`` (after
                    the polishing step). Empty for NUTS.
    elbo, elbo_se   VI only: ELBO at the fitted guide from many particles and its Monte-Carlo
                    standard error.
    inference_data  ArviZ InferenceData of ``samples`` (VI: one chain; NUTS: chains x draws with
                    sample_stats); None for MAP/MLE.
    wall_time       seconds for the whole call, compilation included.
    compile_time    the part of ``wall_time`` spent tracing and compiling (run time is the
                    difference).
    converged       ``status == "ok"``: the fit's certificate holds (see ``status``).
    n_steps         optimiser steps (Adam plus polishing) or NUTS draws per chain.
    diagnostics     at least n_nonfinite, divergences, r_hat_max, ess_bulk_min, message (None
                    where not applicable), plus method-specific entries (MAP/MLE:
                    gradient_norm, gradient_tol; VI: plateau_*; NUTS: ess_tail_min, draws,
                    seconds, cap_hit, mixing_failures; see each routine).
    status          one of STATUSES: "ok" (certified: a MAP/MLE optimum whose gradient
                    certificate holds, a VI run whose ELBO plateaued within its Monte-Carlo
                    error, NUTS chains that mixed), "not_converged" (MAP, MLE, VI) or
                    "failed_to_mix" (NUTS). Invariant: ``converged == (status == "ok")``.
                    Left out (None), it follows ``converged``: "ok" or "not_converged".
    hard_assignment True when the fit's responsibilities are one-hot (hard / classification
                    EM): the ELBO of such a fit is evaluated at one-hot q.
    extra           further scalar results of the fit, each named for what it is (e.g.
                    scikit-learn's ``sklearn_vb_lower_bound``); the experiments store them as
                    columns.
    """

    method: str
    params: dict[str, np.ndarray]
    samples: dict[str, np.ndarray] | None
    objective_name: str | None
    objective_trace: np.ndarray
    elbo: float | None
    elbo_se: float | None
    inference_data: az.InferenceData | None
    wall_time: float
    compile_time: float
    converged: bool
    n_steps: int
    diagnostics: dict = field(default_factory=dict)
    status: str | None = None
    hard_assignment: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.status is None:  # a routine that gives no status: what ``converged`` says
            object.__setattr__(self, "status", "ok" if self.converged else "not_converged")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if bool(self.converged) != (self.status == "ok"):
            raise ValueError(f"converged={self.converged!r} contradicts status="
                             f"{self.status!r}: converged must equal (status == 'ok')")
