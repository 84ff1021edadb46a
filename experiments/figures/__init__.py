"""Figures of a finished run (PNG and PDF, one style): see make_figures."""

from __future__ import annotations

import warnings

from .data import ok_rows, primary_groups
from .estimates import forest_figure
from .gaps import gaps_figure
from .marginals import marginal_figure
from .objectives import elbo_figure
from .scatter import certainty_figure, ellipses_figure
from .selection import selection_figure
from .style import FigureInfo
from .traces import traces_figure
from .vae import FIGURES as VAE_FIGURES

PER_DATASET = (ellipses_figure, certainty_figure, marginal_figure, traces_figure, forest_figure)


def make_figures(store, df, out_dir) -> list[FigureInfo]:
    """Draw every figure that the rows of ``df`` support; a figure that fails to draw is
    reported as a warning and skipped (the report still gets written)."""
    figures = []
    groups = list(primary_groups(df))

    def attempt(fn, *args):
        try:
            info = fn(*args)
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"figure {fn.__name__}{args[1:2]} failed: {exc!r}", stacklevel=2)
            return
        if info is not None:
            figures.append(info)

    for dataset, rows in groups:
        for fn in PER_DATASET:
            attempt(fn, store, dataset, rows, out_dir)
    attempt(elbo_figure, groups, out_dir)
    attempt(selection_figure, ok_rows(df), out_dir)
    attempt(gaps_figure, ok_rows(df), out_dir)
    for fn in VAE_FIGURES:  # models with local latents beside the mixtures of the same data
        attempt(fn, store, ok_rows(df), out_dir)
    return figures


__all__ = ["FigureInfo", "make_figures"]
