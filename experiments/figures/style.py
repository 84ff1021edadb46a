"""One look for every figure: Agg backend, fonts, a fixed colour per method, PNG + PDF output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

# Each built-in method's colour is set where it is registered (register_method(colour=...)),
# drawn from this palette. Colour-blind-safe: Okabe & Ito's eight (Wong 2011, Nature Methods
# 8:441), then Paul Tol's "muted" scheme, yellow (faint on white), Tol's vibrant magenta and
# red, his high-contrast ochre, his high-contrast blue and vibrant teal; black (the truth's
# colour) comes last
_OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000",
              "#F0E442")
_TOL_MUTED = ("#332288", "#882255", "#117733", "#999933", "#AA4499", "#44AA99", "#DDCC77",
              "#CC6677", "#88CCEE")
_TOL_MORE = ("#EE3377", "#CC3311", "#997700", "#004488", "#009988")
_PALETTE = _OKABE_ITO[:6] + _TOL_MUTED + _OKABE_ITO[7:] + _TOL_MORE + _OKABE_ITO[6:7]
TRUTH_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.2}
DATA_COLOR = "0.6"

RC = {
    "figure.dpi": 100, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 9,
    "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.3, "legend.frameon": False, "pdf.fonttype": 42,
}


def _registered():
    from ..methods import METHODS  # here, not at import: methods do not need figures

    return METHODS


def method_color(method: str):
    """The colour a method's registration gives it, the same in every figure; a method
    registered without one (a plug-in) gets a palette colour from its name."""
    entry = _registered().get(method)
    if entry is not None and entry.colour is not None:
        return entry.colour
    return _PALETTE[sum(map(ord, method)) % len(_PALETTE)]


def sort_methods(methods):
    """Methods in registration order (built-ins by module, then plug-ins), unknown names
    last, alphabetically."""
    order = {name: i for i, name in enumerate(_registered())}
    return sorted(methods, key=lambda m: (order.get(m, len(order)), m))


def legend_columns(labels, width_in, most=5, fontsize=8.0) -> int:
    """How many columns of a legend of ``labels`` fit across ``width_in`` inches at
    ``fontsize`` points (matplotlib's handle, its padding and the column spacing: about
    5.5 em a column; text about 0.6 em a character; 3 em of frame and border)."""
    labels = list(labels)
    if not labels:
        return 1
    column_pt = fontsize * (5.5 + 0.6 * max(len(str(label)) for label in labels))
    fits = int((width_in * 72.0 - 3.0 * fontsize) // column_pt)
    return max(1, min(most, len(labels), fits))


def axis_label(name: str, unit: str) -> str:
    return f"{name} ({unit})" if unit else name


@dataclass(frozen=True)
class FigureInfo:
    """A saved figure: stem (file name without suffix), png and pdf paths, caption."""

    stem: str
    png: Path
    pdf: Path
    caption: str
    width_in: float = float("nan")  # printed width: SINGLE_COLUMN or DOUBLE_COLUMN
    min_text_pt: float = float("nan")  # the smallest visible text at that width
    text_clashes: tuple = ()  # texts that overlap each other or leave the figure
    legends_over_data: tuple = ()  # legends drawn over a panel's data (legends_over_data)


SINGLE_COLUMN, DOUBLE_COLUMN = 3.5, 7.0  # inches, a journal's column and page widths
MIN_TEXT_PT = 8.0


def print_width(width: float) -> float:
    """The column layout a figure drawn ``width`` inches wide is set for: single column when
    it fits one, else the page width."""
    return SINGLE_COLUMN if width <= SINGLE_COLUMN else DOUBLE_COLUMN


def new_figure(nrows=1, ncols=1, width=6.4, height=4.0, **kw):
    """A figure at its printed size: ``width`` snaps to 3.5 or 7 in; a wider request is
    shrunk to 7 in with its height, so the panels keep their shape and every text its size
    in points."""
    printed = print_width(width)
    height = height * min(1.0, printed / width)
    with plt.rc_context(RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=(printed, height), squeeze=False, **kw)
    return fig, axes


def _plain_symlog_ticks(axis, linthresh, subs=(1.0,)):
    """Ticks of a symlog ``axis`` at ``subs`` per decade, written as plain numbers."""
    from matplotlib.ticker import FuncFormatter, SymmetricalLogLocator

    axis.set_major_locator(SymmetricalLogLocator(base=10, linthresh=linthresh, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 1
                                           else f"{v:g}"))


def symlog_y(ax, linthresh=1.0):
    """A symmetric log y axis from 0 with plain-number ticks (0, 1, 10, 100, ...)."""
    ax.set_yscale("symlog", linthresh=linthresh)
    ax.set_ylim(bottom=-0.3 * linthresh)
    _plain_symlog_ticks(ax.yaxis, linthresh)


def symlog_axis(ax, linthresh=1.0):
    """A symmetric log x axis whose ticks are plain numbers (-50, -20, -10, ... 0): at 1, 2
    and 5 per decade where the data span at most 1.5 decades, at 1 and 3 up to 2.3 decades,
    else at powers of ten (a half-page panel holds no more labels), so that a gap of 40 nats
    is read off the axis, not guessed between -10^1 and -10^2."""
    ax.set_xscale("symlog", linthresh=linthresh)
    low, high = ax.get_xlim()
    decades = np.log10(max(abs(low), abs(high), linthresh) / linthresh)
    subs = (1.0, 2.0, 5.0) if decades <= 1.5 else (1.0, 3.0) if decades <= 2.3 else (1.0,)
    _plain_symlog_ticks(ax.xaxis, linthresh, subs)
    ax.tick_params(axis="x", labelrotation=30)


def smallest_text_pt(fig) -> float:
    """The size in points of the smallest text ``fig`` draws (drawn_texts)."""
    sizes = [t.get_fontsize() for t in drawn_texts(fig)]
    return float(min(sizes)) if sizes else float("nan")


def drawn_texts(fig) -> list:
    """The texts ``fig`` draws: titles, axis labels and their offsets, the labels of ticks
    inside the view (matplotlib keeps labels for ticks beyond it, never drawn), annotations,
    legends' texts and the figure's own."""
    texts = list(fig.texts)
    for legend in _visible_legends(fig):
        texts += [*legend.get_texts(), legend.get_title()]
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            if not axis.get_visible():
                continue
            texts += [axis.label, axis.get_offset_text()]
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * max(abs(low), abs(high), 1.0)
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if low - slack <= tick.get_loc() <= high + slack:
                    texts += [tick.label1, tick.label2]  # each drawn where visible
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def text_clashes(fig) -> tuple[str, ...]:
    """The drawn texts of ``fig`` that overlap another ("'a' overlaps 'b'"), run past the
    figure's edge ("'a' leaves the figure") or lie under a legend's frame ("'a' is under
    legend [...]"): titles into neighbouring titles, a legend over a title or an axis label,
    a clipped axis label. Draws the figure once more at its own dpi (savefig
    leaves legends placed at the file's)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    texts = drawn_texts(fig)
    boxes = [(t.get_text().strip().replace("\n", " ")[:40],
              t.get_window_extent(renderer).padded(-1.0)) for t in texts]
    clashes = [f"'{name}' leaves the figure" for name, b in boxes
               if b.x0 < 0 or b.y0 < 0 or b.x1 > width or b.y1 > height]
    for i, (a, box_a) in enumerate(boxes):
        clashes += [f"'{a}' overlaps '{b}'" for b, box_b in boxes[i + 1:]
                    if box_a.overlaps(box_b)]
    # a text under a legend's frame (an axis label the legend below the panel sits on)
    for legend in _visible_legends(fig):
        own = {id(t) for t in [*legend.get_texts(), legend.get_title()]}
        frame = legend.get_window_extent(renderer)
        names = [t.get_text() for t in legend.get_texts()][:3]
        clashes += [f"'{name}' is under legend {names}"
                    for t, (name, box) in zip(texts, boxes, strict=True)
                    if id(t) not in own and box.overlaps(frame)]
    return tuple(clashes)


def _visible_legends(fig) -> list:
    """The figure's own legends and its panels' that are drawn."""
    return [lg for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
            if lg is not None and lg.get_visible()]


def _every_pixel(xy):
    """A polyline (M, 2) in pixels with a point every pixel along each of its segments."""
    seg = np.diff(xy, axis=0)
    steps = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1])).astype(int))
    start = np.repeat(np.arange(len(seg)), steps)
    fraction = np.concatenate([np.arange(n) / n for n in steps])
    return np.concatenate([xy[start] + seg[start] * fraction[:, None], xy[-1:]])


def _data_points(ax, renderer):
    """(label, (M, 2) display coordinates) of what ``ax`` plots in data coordinates: the
    vertices of its lines with the segments between them sampled every pixel, its scatter
    points and the tops and centres of its bars. Lines drawn across the panel in axes
    coordinates (axhline, axvline: references, not data) are left out; filled bands are
    tested by _bands_under."""
    out = []
    for line in ax.get_lines():
        if not line.get_visible() or line.get_transform() != ax.transData:
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        if len(xy) > 1 and line.get_linestyle() not in ("None", "none", " ", ""):
            xy = _every_pixel(xy)
        out.append((line.get_label(), xy))
    for coll in ax.collections:  # scatter points
        if isinstance(coll, PathCollection) and coll.get_visible() \
                and coll.get_offset_transform() == ax.transData:
            out.append((coll.get_label(),
                        ax.transData.transform(np.asarray(coll.get_offsets(), float))))
    # bars (histograms): the top corners and the centre of each bar of some height
    boxes = [p.get_window_extent(renderer) for p in ax.patches
             if isinstance(p, Rectangle) and p.get_visible()]
    boxes = np.array([(b.x0, b.y0, b.x1, b.y1) for b in boxes if b.height > 0]).reshape(-1, 4)
    if len(boxes):
        top = np.maximum(boxes[:, 1], boxes[:, 3])
        out.append(("bars", np.concatenate([np.c_[boxes[:, 0], top], np.c_[boxes[:, 2], top],
                                            (boxes[:, :2] + boxes[:, 2:]) / 2])))
    return [(label, xy) for label, xy in out if len(xy)]


def _bands_under(ax, frame, panel) -> list:
    """Labels of the filled bands (fill_between, fill: PolyCollection in data coordinates)
    of ``ax`` that a 9 x 9 grid of points inside the display box ``frame`` and the panel's
    box ``panel`` falls in."""
    gx, gy = np.meshgrid(np.linspace(frame.x0, frame.x1, 9), np.linspace(frame.y0, frame.y1, 9))
    grid = np.c_[gx.ravel(), gy.ravel()]
    grid = grid[(grid[:, 0] >= panel.x0) & (grid[:, 0] <= panel.x1)
                & (grid[:, 1] >= panel.y0) & (grid[:, 1] <= panel.y1)]
    if not len(grid):
        return []
    return [coll.get_label() for coll in ax.collections
            if isinstance(coll, PolyCollection) and coll.get_visible()
            and coll.get_transform() == ax.transData
            and any(path.contains_points(grid, transform=ax.transData).any()
                    for path in coll.get_paths())]


def legends_over_data(fig, draw=True) -> tuple[str, ...]:
    """The legends of ``fig`` (a panel's or the figure's own) whose frame covers data of a
    panel it is drawn over: "legend ['a', 'b'] covers 'line label' in panel 'title'". Points
    on the frame's edge (within 1 pixel) do not count. draw=False: the figure was just drawn
    at its own dpi (by text_clashes), as this needs."""
    if draw:
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for legend in _visible_legends(fig):
        frame = legend.get_window_extent(renderer).padded(-1.0)
        names = [t.get_text() for t in legend.get_texts()][:3]
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            panel = ax.get_window_extent(renderer)
            covered = [label for label, xy in _data_points(ax, renderer)
                       if ((xy[:, 0] > frame.x0) & (xy[:, 0] < frame.x1)
                           & (xy[:, 1] > frame.y0) & (xy[:, 1] < frame.y1)
                           & (xy[:, 0] >= panel.x0) & (xy[:, 0] <= panel.x1)
                           & (xy[:, 1] >= panel.y0) & (xy[:, 1] <= panel.y1)).any()]
            found += [f"legend {names} covers '{label}' in panel "
                      f"'{ax.get_title() or ax.get_ylabel()}'"
                      for label in [*covered, *_bands_under(ax, frame, panel)]]
    return tuple(dict.fromkeys(found))


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
    width, min_pt = float(fig.get_figwidth()), smallest_text_pt(fig)
    clashes = text_clashes(fig)
    covered = legends_over_data(fig, draw=False)  # text_clashes drew it at its own dpi
    plt.close(fig)
    return FigureInfo(stem, png, pdf, caption, width, min_pt, clashes, covered)


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
