"""The cost and held-out figures, and the report's list of figures that failed to draw, on a
fabricated table whose values are known (no fits run)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt

import experiments.figures as figures
from experiments.figures.cost import NOT_MEASURED, cost_figure, cost_table, draw_cost
from experiments.figures.data import ok_rows, primary_groups
from experiments.figures.heldout import draw_heldout, heldout_figure, heldout_points
from experiments.figures.style import new_figure
from experiments.report import write_report
from experiments.store import ResultStore

NAN, INF = float("nan"), float("inf")
LL, SE = "log_likelihood_test_per_point", "log_likelihood_test_per_point_se"

# (dataset, K, method, seed, fit_status, compile_time, run_time, held-out ll / point, its se,
#  ari); status "failed" where fit_status is None
CELLS = [
    ("blobs", 2, "em", 0, "ok", 3.0, 0.25, -1.5, 0.05, 0.9),
    ("blobs", 2, "em", 1, "ok", 5.0, 0.5, -1.7, 0.06, 0.8),
    ("blobs", 2, "em", 2, None, NAN, NAN, NAN, NAN, NAN),          # failed cell
    ("blobs", 2, "hard_em", 0, "ok", 1.0, 0.125, -1.8, NAN, 0.7),
    ("blobs", 2, "hard_em", 1, "ok", 1.0, 0.125, -INF, NAN, 0.6),  # a point of probability 0
    ("blobs", 2, "sklearn_em", 0, "ok", NAN, 0.1, -1.6, NAN, 0.85),
    ("blobs", 2, "sklearn_em", 1, "ok", NAN, 0.2, -1.65, NAN, 0.75),
    ("blobs", 2, "vi_mean_field", 0, "ok", 10.0, 4.0, -2.0, NAN, 0.5),
    ("blobs", 2, "vi_mean_field", 1, "not_converged", NAN, 6.0, -3.0, NAN, 0.1),
    ("blobs", 3, "em", 0, "ok", 2.0, 0.5, -9.0, 0.1, 0.3),         # another problem (K=3)
    ("plain", 2, "em", 0, "ok", 0.5, 0.5, NAN, NAN, NAN),          # no held-out, no labels
]


def _row(dataset, k, method, seed, fit_status, compile_time, run_time, ll, se, ari):
    key = f"{dataset}-{k}-{method}-{seed}"
    row = {"key": key, "config_key": key, "dataset": dataset, "model": "gaussian_mixture",
           "n_components": k, "covariance_type": "full", "method": method, "seed": seed,
           "dataset_params": "{}", "model_options": "{}", "method_options": "{}",
           "prior": json.dumps("default"), "held_out_fraction": 0.2,
           "status": "ok" if fit_status else "failed",
           "error": "" if fit_status else "RuntimeError: fabricated", "wall_time": 1.0}
    if fit_status:
        row.update(fit_status=fit_status, converged=fit_status == "ok",
                   compile_time=compile_time, run_time=run_time, log_likelihood_train=-100.0,
                   **{LL: ll, SE: se}, ari=ari, n_train=40, n_test=10,
                   wall_time=run_time + (0 if compile_time != compile_time else compile_time))
    return row


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def table():
    return pd.DataFrame([_row(*c) for c in CELLS])


def _groups(table):
    return dict(primary_groups(table))


# ------------------------------------------------------------------ cost

def test_cost_table_sums_finished_cells_and_leaves_unmeasured_compile_times_out(table):
    t = cost_table(table)
    # registration order; the failed em cell (seed 2) is not counted
    assert list(t.index) == ["em", "hard_em", "vi_mean_field", "sklearn_em"]
    assert t.loc["em", "n_cells"] == 4  # blobs K=2 seeds 0, 1, blobs K=3, plain
    assert t.loc["em", "compile"] == pytest.approx(3.0 + 5.0 + 2.0 + 0.5)
    assert t.loc["em", "run"] == pytest.approx(0.25 + 0.5 + 0.5 + 0.5)
    assert t.loc["hard_em", "compile"] == pytest.approx(2.0)
    # scikit-learn measures no compile time: NaN, never 0
    assert np.isnan(t.loc["sklearn_em", "compile"]) and t.loc["sklearn_em", "n_compile"] == 0
    assert t.loc["sklearn_em", "run"] == pytest.approx(0.3)
    # one of two VI cells measured it: the sum is over that one, and says how many
    assert t.loc["vi_mean_field", "compile"] == pytest.approx(10.0)
    assert t.loc["vi_mean_field", "n_compile"] == 1
    assert t.loc["vi_mean_field", "run"] == pytest.approx(10.0)


def test_cost_bars_are_the_sums_and_unmeasured_is_written_not_drawn(table):
    t = cost_table(table)
    fig, axes = new_figure(1, 1)
    ax = axes[0, 0]
    draw_cost(ax, t)
    bars = {p.get_gid(): p.get_width() for p in ax.patches}
    assert bars == pytest.approx({
        "em compile": 10.5, "em run": 1.75, "hard_em compile": 2.0, "hard_em run": 0.25,
        "sklearn_em run": 0.3, "vi_mean_field compile": 10.0, "vi_mean_field run": 10.0})
    assert "sklearn_em compile" not in bars
    texts = [t.get_text() for t in ax.texts]
    assert sum(NOT_MEASURED in s for s in texts) == 1
    assert ax.get_xscale() == "log"
    # every bar's value is inside the axis (its left end at or below the smallest value)
    lo, hi = ax.get_xlim()
    assert lo <= 0.25 and hi >= 10.5
    ticks = dict(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels()),
                     strict=True))
    assert [ticks[y] for y in sorted(ticks, reverse=True)] == [
        "em (4)", "hard_em (2)", "vi_mean_field (2; compile in 1)", "sklearn_em (2)"]


def test_cost_figure_is_written_with_its_caption(table, tmp_path):
    info = cost_figure(table, tmp_path)
    assert info.png.stat().st_size > 0 and info.pdf.stat().st_size > 0
    assert "summed over the method's finished cells" in info.caption
    assert "not measured by vi_mean_field, sklearn_em" in info.caption
    assert "1 failed cell(s) left out" in info.caption


def test_a_zero_compile_time_is_zero_not_unmeasured(tmp_path):
    # scikit-learn's methods report compile_time 0.0: nothing compiled, a measured zero
    table = pd.DataFrame([_row("blobs", 2, "sklearn_em", s, "ok", 0.0, 0.5, -1.0, NAN, 1.0)
                          for s in (0, 1)])
    t = cost_table(table)
    assert t.loc["sklearn_em", "compile"] == 0.0 and t.loc["sklearn_em", "n_compile"] == 2
    fig, axes = new_figure(1, 1)
    draw_cost(axes[0, 0], t)
    assert {p.get_gid(): p.get_width() for p in axes[0, 0].patches} == {
        "sklearn_em compile": 0.0, "sklearn_em run": 1.0}
    texts = [x.get_text() for x in axes[0, 0].texts]
    assert " 0 s" in texts and not any(NOT_MEASURED in x for x in texts)
    info = cost_figure(table, tmp_path)
    assert "Compile time 0 s" in info.caption and "sklearn_em." in info.caption
    assert "not measured" not in info.caption


def test_the_caption_gives_the_whole_cells_compile_share(table, tmp_path):
    assert "Whole cells" not in cost_figure(table, tmp_path).caption  # no such columns
    ok = table["status"] == "ok"
    table.loc[ok, "cell_time"] = 4.0
    table.loc[ok, "cell_compile_time"] = 3.0
    table.loc[table.index[ok][0], "cell_compile_time"] = NAN  # a cell without the clock
    n = int(ok.sum())
    caption = cost_figure(table, tmp_path).caption
    # the finished cells with both columns: (n - 1) x 4 s, of which (n - 1) x 3 s, 75%
    assert (f"Whole cells (fit, extra fits, scoring; {n - 1} cells): {4.0 * (n - 1):.4g} s, of "
            f"which {3.0 * (n - 1):.4g} s (75%)") in caption


def test_cost_figure_skips_a_table_without_times(table, tmp_path):
    assert cost_figure(table.drop(columns=["compile_time"]), tmp_path) is None


# ------------------------------------------------------------------ held-out

def _points_drawn(ax):
    """{(method, x): hollow} of the seed dots and {method: x} of the mean bars."""
    method_at = {int(round(y)): t.get_text()
                 for y, t in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)}
    dots, means = {}, {}
    for line in ax.lines:
        x, y = line.get_xdata()[0], line.get_ydata()[0]
        method = method_at[int(round(y))]
        if line.get_marker() == "o":
            dots[(method, float(x))] = line.get_markerfacecolor() == "none"
        elif line.get_marker() == "|":
            means[method] = float(x)
    return dots, means


def test_heldout_points_are_the_problems_seeds(table):
    rows = _groups(table)["blobs"]
    points = heldout_points(ok_rows(table), rows)
    # K=3 is another problem and the failed cell is no finished row
    assert len(points) == 8
    assert set(points["method"]) == {"em", "hard_em", "sklearn_em", "vi_mean_field"}
    certified = points.set_index(["method", "seed"])["certified"]
    assert not certified[("vi_mean_field", 1)] and certified.drop(("vi_mean_field", 1)).all()


def test_heldout_dots_and_means_equal_the_rows(table):
    rows = _groups(table)["blobs"]
    points = heldout_points(ok_rows(table), rows)
    fig, axes = new_figure(1, 2)
    draw_heldout(axes[0, 0], points, LL, SE)
    dots, means = _points_drawn(axes[0, 0])
    # every finite value, hollow exactly where not certified; -inf is not drawn
    assert dots == {("em", -1.5): False, ("em", -1.7): False, ("hard_em", -1.8): False,
                    ("sklearn_em", -1.6): False, ("sklearn_em", -1.65): False,
                    ("vi_mean_field", -2.0): False, ("vi_mean_field", -3.0): True}
    # the mean over certified seeds with a finite value (VI's seed 1 is not certified)
    assert means == pytest.approx({"em": -1.6, "hard_em": -1.8, "sklearn_em": -1.625,
                                   "vi_mean_field": -2.0})
    # ±2 s.e. lines only where the se is given (em's two seeds)
    segments = sorted(tuple(np.round(s[:, 0], 9)) for c in axes[0, 0].collections
                      for s in c.get_segments())
    assert segments == [(-1.82, -1.58), (-1.6, -1.4)]
    draw_heldout(axes[0, 1], points, "ari", None)
    dots, means = _points_drawn(axes[0, 1])
    assert dots[("vi_mean_field", 0.1)] is True and len(dots) == 8
    assert means == pytest.approx({"em": 0.85, "hard_em": 0.65, "sklearn_em": 0.8,
                                   "vi_mean_field": 0.5})


def test_heldout_figure_is_written_and_names_what_is_flagged(table, tmp_path):
    rows = _groups(table)["blobs"]
    info = heldout_figure(ok_rows(table), "blobs", rows, tmp_path)
    assert info.stem == "heldout_blobs"
    assert info.png.stat().st_size > 0 and info.pdf.stat().st_size > 0
    assert "vi_mean_field seed 1 (not_converged)" in info.caption
    assert "−inf" in info.caption and "hard_em seed 1" in info.caption
    assert "2 seeds: 0, 1" in info.caption


def test_heldout_figure_skips_a_dataset_without_the_columns(table, tmp_path):
    rows = _groups(table)["plain"]
    assert heldout_figure(ok_rows(table), "plain", rows, tmp_path) is None


# ------------------------------------------------------------------ failures in the report

def test_a_figure_that_raises_is_listed_in_the_report(table, tmp_path, monkeypatch):
    store = ResultStore(tmp_path / "run")
    for row in table.to_dict("records"):
        store.write(row)

    def broken_cost(df, out_dir):
        raise RuntimeError("no ink\nleft")

    def broken_per_dataset(store, dataset, rows, out_dir):
        raise KeyError(f"nothing for {dataset}")

    broken_per_dataset.__name__ = "broken_per_dataset"
    monkeypatch.setattr(figures, "cost_figure", broken_cost)
    monkeypatch.setattr(figures, "PER_DATASET", (broken_per_dataset,))
    with pytest.warns(UserWarning, match="broken_cost"):
        write_report(store.root)
    md = (store.root / "report.md").read_text()
    listed = md.split("### Figures that failed to draw", 1)[1].split("![Figure", 1)[0]
    assert "| broken_cost | (all) | RuntimeError: no ink left |" in listed
    for dataset in ("blobs", "plain"):
        assert f"| broken_per_dataset | {dataset} | KeyError: 'nothing for {dataset}' |" \
            in listed
    assert listed.count("| broken_") == 3  # nothing else failed on this store
    html = (store.root / "report.html").read_text()
    assert "Figures that failed to draw" in html and "no ink left" in html
    # the figures that did draw are still in the report
    assert "heldout_blobs.png" in md and "cost.png" not in md


def test_no_failure_section_when_every_figure_draws(table, tmp_path, monkeypatch):
    store = ResultStore(tmp_path / "run")
    for row in table.to_dict("records"):
        store.write(row)
    monkeypatch.setattr(figures, "PER_DATASET", ())
    write_report(store.root)
    md = (store.root / "report.md").read_text()
    assert "failed to draw" not in md
    assert "cost.png" in md and "heldout_blobs.png" in md


def test_every_built_in_method_has_its_own_colour():
    from matplotlib.colors import to_hex

    from experiments.figures.style import method_color, sort_methods
    from experiments.methods import METHODS

    assert all(entry.colour is not None for entry in METHODS.values())
    colours = [to_hex(method_color(m)) for m in METHODS]
    assert len(set(colours)) == len(colours)
    assert to_hex(method_color("em")) == "#0072b2"  # the colour set at its registration
    assert sort_methods(["nuts", "plug_in", "em", "a_plug_in"]) == ["em", "nuts", "a_plug_in",
                                                                     "plug_in"]


def test_text_clashes_finds_overlapping_and_clipped_text_only():
    from experiments.figures.style import new_figure, text_clashes

    fig, axes = new_figure(1, 2, width=7.0, height=2.5)
    for ax in axes.flat:
        ax.plot([0, 1], [0, 1])
        ax.set_xlim(0.2, 0.8)  # ticks at 0 and 1 keep labels that are never drawn
        ax.set_xlabel("x")
        ax.set_title("a title")
    fig.tight_layout()
    fig.canvas.draw()
    assert text_clashes(fig) == ()
    axes[0, 0].text(0.5, 0.5, "one note", transform=axes[0, 0].transAxes)
    axes[0, 0].text(0.52, 0.52, "another note", transform=axes[0, 0].transAxes)
    axes[0, 1].text(1.6, 0.5, "past the edge", transform=axes[0, 1].transAxes)
    assert set(text_clashes(fig)) == {"'one note' overlaps 'another note'",
                                      "'past the edge' leaves the figure"}


def test_legends_over_data_finds_a_legend_on_a_line_a_point_or_a_bar_only():
    """A legend in the corner a line runs through is reported; the same legend moved outside
    the panel is not, nor a reference line (axhline) under it; scatter points and histogram
    bars under a legend are reported too."""
    from experiments.figures.style import legends_over_data, new_figure

    fig, axes = new_figure(1, 1, width=3.5, height=3.0)
    ax = axes[0, 0]
    x = np.linspace(0, 1, 5)
    ax.plot(x, x, label="rising")          # runs through the upper right corner
    ax.axhline(0.9, color="k", label="ref")  # across the panel in axes coordinates
    ax.legend(loc="upper right")
    fig.tight_layout()
    assert legends_over_data(fig) == ("legend ['rising', 'ref'] covers 'rising' in panel ''",)
    ax.legend(loc="upper left")  # over the empty corner: only the reference line passes under
    assert legends_over_data(fig) == ()
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    assert legends_over_data(fig) == ()

    fig, axes = new_figure(1, 2, width=7.0, height=3.0)
    axes[0, 0].scatter([0.1, 0.9], [0.9, 0.1], label="points")
    axes[0, 0].set_title("scatter")
    axes[0, 0].legend(loc="upper left")
    axes[0, 1].hist(np.r_[np.zeros(50), np.ones(5)], bins=2, label="counts")
    axes[0, 1].set_title("histogram")
    axes[0, 1].legend(loc="upper left")  # over the tall bar at 0
    fig.tight_layout()
    assert set(legends_over_data(fig)) == {
        "legend ['points'] covers 'points' in panel 'scatter'",
        "legend ['counts'] covers 'bars' in panel 'histogram'"}

    # a filled band (a posterior predictive 5-95% band) under a legend, then the legend above
    fig, axes = new_figure(1, 1, width=3.5, height=3.0)
    ax = axes[0, 0]
    ax.fill_between([0, 1], [0.5, 0.5], [1.0, 1.0], alpha=0.3, label="5-95% band")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right")
    fig.tight_layout()
    assert legends_over_data(fig) == ("legend ['5-95% band'] covers '5-95% band' in panel ''",)
    ax.legend(loc="lower right")  # the band is the upper half only
    assert legends_over_data(fig) == ()


def test_text_clashes_finds_an_axis_label_under_a_legend_frame():
    """The defect density_height had: a legend anchored just below the panel sits on the x
    label (no legend text overlaps the label, the frame does); one anchored well below does
    not."""
    from experiments.figures.style import new_figure, text_clashes

    fig, axes = new_figure(1, 1, width=7.0, height=3.0)
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1], label="a line")
    ax.set_xlabel("height (cm)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.05))
    fig.tight_layout()
    assert "'height (cm)' is under legend ['a line']" in text_clashes(fig)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35))
    assert not [c for c in text_clashes(fig) if "under legend" in c]
