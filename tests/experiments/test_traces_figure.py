"""The convergence figure judges each trace by a reference: EM by its own final value, the SVI
point estimates by EM's certified optimum of the same objective, VI by its noise band."""

import numpy as np
import pandas as pd

from em_reference import GaussianMixtureEM
from experiments.figures.traces import em_gaps, first_decrease, reference_optimum, \
    running_mean, running_mean_noise, traces_figure


class _Store:
    def __init__(self, traces):
        self.traces = traces

    def load_arrays(self, key):
        return {"trace": self.traces[key]}


def _row(method, objective_name, **values):
    row = {"key": method, "method": method, "objective_name": objective_name,
           "dataset": "d", "model": "gaussian_mixture", "n_components": 2,
           "covariance_type": "full", "seed": 0, "status": "ok", "fit_status": "ok",
           "log_likelihood_train": np.nan, "log_joint": np.nan, "elbo_vi": np.nan}
    row.update(values)
    return row


def test_em_gaps_of_a_real_em_run_fall_and_never_turn_negative():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-2, 1, (80, 1)), rng.normal(3, 0.5, (60, 1))])
    fit = GaussianMixtureEM(n_components=2, random_state=0, tol=1e-10).fit(X)
    trace = fit.lower_bounds_
    gaps = em_gaps(trace)
    assert first_decrease(trace) is None
    assert gaps.shape == (trace.size - 1,) and np.all(gaps >= -1e-9)
    assert gaps[0] > gaps[-1]


def test_a_decrease_is_found_where_it_happens():
    assert first_decrease(np.array([-10.0, -9.0, -9.5, -8.0])) == 2
    assert first_decrease(np.array([-10.0, -9.0, -9.0, -8.0])) is None


def test_the_reference_is_the_certified_em_optimum_of_the_same_objective():
    rows = pd.DataFrame([_row("em", "log_likelihood", log_likelihood_train=-100.0),
                         _row("map_em", "log_joint", log_joint=-120.0,
                              fit_status="not_converged")])
    assert reference_optimum(rows, "log_likelihood") == (-100.0, "em")
    assert reference_optimum(rows, "log_joint") is None  # map_em is not certified
    assert reference_optimum(rows, "elbo_vi") is None


def test_running_mean_noise_is_the_sd_of_the_window_mean():
    rng = np.random.default_rng(1)
    trace = rng.normal(-50.0, 2.0, 20_000)
    assert abs(running_mean_noise(trace, 25) - 2.0 / 5.0) < 0.02
    assert np.allclose(running_mean(np.arange(5.0), 2), [0.5, 1.5, 2.5, 3.5])


def test_the_caption_states_each_point_estimate_s_final_gap(tmp_path):
    steps = np.arange(1, 301)
    traces = {"em": np.array([-110.0, -101.0, -100.2, -100.0, -100.0]),
              "map_em": np.array([-130.0, -121.0, -120.0]),
              # MLE stops 0.5 nats short of EM's optimum; MAP reaches map_em's
              "mle_sgd": -100.5 - 9.5 * np.exp(-steps / 20.0),
              "map": -120.0 - 10.0 * np.exp(-steps / 10.0),
              "vi_mean_field": -140.0 + np.random.default_rng(2).normal(0, 1.0, 300)}
    traces["map"][-1] = -120.0
    rows = pd.DataFrame([
        _row("em", "log_likelihood", log_likelihood_train=-100.0),
        _row("map_em", "log_joint", log_joint=-120.0),
        _row("mle_sgd", "log_likelihood"), _row("map", "log_joint"),
        _row("vi_mean_field", "elbo_vi", elbo_vi=-140.0)])
    info = traces_figure(_Store(traces), "d", rows, tmp_path)
    assert "mle_sgd 0.5 below em" in info.caption
    assert "map at map_em" in info.caption
    assert "it never decreased" in info.caption
    assert info.width_in == 7.0 and info.min_text_pt >= 8
    assert info.png.exists() and info.pdf.exists()


def test_an_em_trace_that_fell_is_named_in_the_caption(tmp_path):
    rows = pd.DataFrame([_row("em", "log_likelihood", log_likelihood_train=-100.0)])
    info = traces_figure(_Store({"em": np.array([-110.0, -100.0, -101.0, -100.0])}), "d",
                         rows, tmp_path)
    assert "em's objective decreased at iteration 2" in info.caption
