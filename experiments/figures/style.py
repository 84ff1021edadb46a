"""One look for every figure: Agg backend, fonts, a fixed colour per method, PNG + PDF output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METHOD_ORDER = ("em", "map_em", "hard_em", "sklearn_em", "mle_sgd", "map", "sklearn_vb",
                "vi_mean_field", "vi_full_rank", "nuts", "cavi", "vi_low_rank", "evidence")
# tab10 for the first ten (their colours as before), then Dark2's
_PALETTE = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors
TRUTH_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.2}
DATA_COLOR = "0.6"

RC = {
    "figure.dpi": 100, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 9,
    "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.3, "legend.frameon": False, "pdf.fonttype": 42,
}


def method_color(method: str):
    """Fixed colour per method across all figures (unknown methods after the built-ins)."""
    i = METHOD_ORDER.index(method) if method in METHOD_ORDER else (
        len(METHOD_ORDER) + sum(map(ord, method)))
    return _PALETTE[i % len(_PALETTE)]


def sort_methods(methods):
    return sorted(methods, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER
                                          else len(METHOD_ORDER), m))


def axis_label(name: str, unit: str) -> str:
    return f"{name} ({unit})" if unit else name


@dataclass(frozen=True)
class FigureInfo:
    """A saved figure: stem (file name without suffix), png and pdf paths, caption."""

    stem: str
    png: Path
    pdf: Path
    caption: str


def new_figure(nrows=1, ncols=1, width=6.4, height=4.0, **kw):
    with plt.rc_context(RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, **kw)
    return fig, axes


def save(fig, out_dir, stem, caption, rect=(0, 0, 1, 1)) -> FigureInfo:
    """Write ``stem``.png and ``stem``.pdf into ``out_dir`` and close the figure.

    rect: the part of the figure (left, bottom, right, top) the axes are laid out in; the
    rest is left to figure-level legends and notes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png, pdf = out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"
    with plt.rc_context(RC):
        fig.tight_layout(rect=rect)
        fig.savefig(png)
        fig.savefig(pdf)
    plt.close(fig)
    return FigureInfo(stem, png, pdf, caption)


# fits that are not certified (fit_status "not_converged" / "failed_to_mix") are drawn
# dotted (lines) or hollow (markers), labelled with their status, and named in the caption
UNCERTIFIED_LINE = {"linestyle": ":"}
UNCERTIFIED_MARKER = {"markerfacecolor": "none"}


def fit_status(row) -> str:
    status = row.get("fit_status") if hasattr(row, "get") else None
    return "ok" if status is None or status != status else str(status)


def is_certified(row) -> bool:
    return fit_status(row) == "ok"


def line_style(row) -> dict:
    return {} if is_certified(row) else dict(UNCERTIFIED_LINE)


def marker_style(row) -> dict:
    return {} if is_certified(row) else dict(UNCERTIFIED_MARKER)


def status_label(method: str, row) -> str:
    """The legend label of a method's row: its name, and its status when not certified."""
    return method if is_certified(row) else f"{method} ({fit_status(row)})"


def uncertified_note(rows) -> str:
    """The caption's sentence naming the rows drawn as uncertified ('' when none is)."""
    flagged = [f"{r['method']} ({fit_status(r)})" for _, r in rows.iterrows()
               if not is_certified(r)] if len(rows) else []
    if not flagged:
        return ""
    return (" Not certified, drawn dotted or hollow and never a reference: "
            + ", ".join(flagged) + ".")
