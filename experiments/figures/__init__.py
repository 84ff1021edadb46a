"""Figures of a finished run (PNG and PDF, one style): see make_figures."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from .cost import cost_figure
from .data import ok_rows, primary_groups
from .decomposition import decomposition_figure
from .estimates import forest_figure
from .gaps import gaps_figure
from .heldout import heldout_figure
from .marginals import marginal_figure
from .objectives import elbo_figure
from .ppc import ppc_figure
from .scatter import certainty_figure, covariance_types_figure, ellipses_figure
from .selection import selection_figure
from .style import FigureInfo
from .traces import traces_figure
from .vae import FIGURES as VAE_FIGURES

PER_DATASET = (ellipses_figure, certainty_figure, marginal_figure, ppc_figure, traces_figure,
               forest_figure)


@dataclass(frozen=True)
class FigureFailure:
    """A figure that raised while drawing: its function's name, the dataset it was drawn for
    ("" for a figure of the whole run) and the error as "Type: message" on one line."""

    figure: str
    dataset: str
    error: str


def make_figures(store, df, out_dir, failures: list | None = None) -> list[FigureInfo]:
    """Draw every figure that the rows of ``df`` support and return them. A figure that fails
    to draw is skipped (the report still gets written), warned about, and appended to
    ``failures`` as a FigureFailure when a list is given."""
    figures = []
    groups = list(primary_groups(df))
    ok = ok_rows(df)

    def attempt(fn, dataset, *args):
        try:
            info = fn(*args)
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"figure {fn.__name__}{f' ({dataset})' if dataset else ''} failed: "
                          f"{exc!r}", stacklevel=2)
            if failures is not None:
                message = " ".join(str(exc).split())  # one line: it goes into a table
                failures.append(FigureFailure(fn.__name__, dataset,
                                              f"{type(exc).__name__}: {message}"))
            return
        if isinstance(info, list):  # a figure function drawing one figure per dataset
            figures.extend(info)
        elif info is not None:
            figures.append(info)

    for dataset, rows in groups:
        for fn in PER_DATASET:
            attempt(fn, dataset, store, dataset, rows, out_dir)
        attempt(heldout_figure, dataset, ok, dataset, rows, out_dir)
    attempt(elbo_figure, "", groups, out_dir)
    attempt(decomposition_figure, "", ok, out_dir)
    attempt(covariance_types_figure, "", store, ok, out_dir)
    attempt(selection_figure, "", ok, out_dir)
    attempt(gaps_figure, "", ok, out_dir)
    attempt(cost_figure, "", df, out_dir)
    for fn in VAE_FIGURES:  # models with local latents beside the mixtures of the same data
        attempt(fn, "", store, ok, out_dir)
    return figures


__all__ = ["FigureFailure", "FigureInfo", "make_figures"]
