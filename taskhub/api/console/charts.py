"""Small charts drawn on the server: a series of figures as an SVG sparkline's path, with
the text a screen reader reads instead (no script, no external asset, nothing the
page's Content-Security-Policy would refuse)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

#: The drawing's own units (the stylesheet sizes it): wide and low.
WIDTH: Final = 120
HEIGHT: Final = 30
#: Room at the top and bottom so that a line at its extremes stays visible.
_MARGIN: Final = 2


@dataclass(frozen=True)
class Sparkline:
    """``path``: the ``d`` of an SVG path (empty when there is nothing to draw); ``text``:
    the same figures in words, the chart's text alternative."""

    path: str
    text: str
    width: int = WIDTH
    height: int = HEIGHT


def sparkline(
    values: Sequence[float | None],
    what: str,
    shown: Callable[[float], str] = lambda v: f"{v:g}",
) -> Sparkline:
    """``values`` (oldest first; None: no figure, a gap in the line) scaled from 0 to
    their largest, as one path; ``what`` names them for the text alternative."""
    top = max((v for v in values if v is not None), default=0.0)
    scale = (HEIGHT - 2 * _MARGIN) / top if top > 0 else 0.0
    step = WIDTH / max(1, len(values) - 1)
    parts: list[str] = []
    pen_down = False
    for index, value in enumerate(values):
        if value is None:
            pen_down = False
            continue
        x = index * step
        y = HEIGHT - _MARGIN - value * scale
        # A segment's first point is drawn as a dot (zero length, round caps), so a
        # figure between two gaps still shows.
        parts.append(f"L{x:.1f} {y:.1f}" if pen_down else f"M{x:.1f} {y:.1f} h0")
        pen_down = True
    words = ", ".join("none" if v is None else shown(v) for v in values)
    return Sparkline(path=" ".join(parts), text=f"{what}, oldest first: {words}")
