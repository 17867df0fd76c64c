"""Boxes, lanes and arrows as a standalone SVG: the data dictionary's pictures.

No layout engine to install (graphviz would be a system package on every machine that
runs ``make docs``): the pictures are lanes of boxes, left to right, which is all an
entity diagram of a layered warehouse needs. Text is in the system's monospace font,
so the picture loads no web font and its box widths follow from character counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape

CHAR_W = 7.2  # px per character of 12 px monospace
ROW_H = 17
HEAD_H = 22
PAD = 8
LANE_GAP = 90
BOX_GAP = 18
TITLE_H = 30

# one colour per schema, the same in every picture
COLOURS = {
    "raw": "#8d6e63",
    "staging": "#7e57c2",
    "core": "#1e88e5",
    "marts": "#43a047",
    "app": "#fb8c00",
    "predictions": "#e53935",
    "api": "#546e7a",
}


@dataclass
class Box:
    """A relation: a coloured title bar over rows of text (its columns, or nothing)."""

    key: str  # schema.name, how edges name it
    schema: str
    title: str
    rows: list[str] = field(default_factory=list)
    x: float = 0.0
    y: float = 0.0

    @property
    def width(self) -> float:
        return max(len(text) for text in [self.title, *self.rows]) * CHAR_W + 2 * PAD

    @property
    def height(self) -> float:
        return HEAD_H + len(self.rows) * ROW_H + (PAD if self.rows else 0)

    def row_y(self, index: int | None) -> float:
        """The vertical middle of a row (None: of the title bar), where an arrow attaches."""
        if index is None:
            return self.y + HEAD_H / 2
        return self.y + HEAD_H + index * ROW_H + ROW_H / 2 + PAD / 2


@dataclass(frozen=True)
class Edge:
    """An arrow from a box's row (a foreign key, or None for the box) to another box's row."""

    source: str
    target: str
    source_row: int | None = None
    target_row: int | None = None


def place(lanes: list[list[list[Box]]]) -> tuple[float, float]:
    """Lay out lanes left to right; a lane is a list of stacks drawn side by side, each a
    column of boxes. Returns the picture's width and height."""
    x, height = PAD, 0.0
    for lane in lanes:
        for stack in lane:
            y = TITLE_H + PAD
            width = max((box.width for box in stack), default=0.0)
            for box in stack:
                box.x, box.y = x, y
                y += box.height + BOX_GAP
            height = max(height, y)
            x += width + BOX_GAP
        x += LANE_GAP - BOX_GAP
    return x - LANE_GAP + PAD, height + PAD


def _box(box: Box) -> str:
    colour = COLOURS.get(box.schema, "#757575")
    parts = [
        f'<g class="table" data-relation="{escape(box.key)}">',
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" '
        f'rx="4" fill="#ffffff" stroke="{colour}"/>',
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{HEAD_H}" rx="4" fill="{colour}"/>',
        f'<text x="{box.x + PAD:.1f}" y="{box.y + 15:.1f}" fill="#ffffff" font-weight="bold">'
        f"{escape(box.title)}</text>",
    ]
    parts += [
        f'<text x="{box.x + PAD:.1f}" y="{box.row_y(index) + 4:.1f}">{escape(text)}</text>'
        for index, text in enumerate(box.rows)
    ]
    return "\n".join([*parts, "</g>"])


def _arrow(edge: Edge, boxes: dict[str, Box]) -> str:
    start, end = boxes[edge.source], boxes[edge.target]
    y1, y2 = start.row_y(edge.source_row), end.row_y(edge.target_row)
    if abs(start.x - end.x) < 1:  # same stack: loop out on the right
        x1 = x2 = start.x + max(start.width, end.width)
        bend = x1 + 30 + abs(y2 - y1) / 10
        path = f"M{x1:.1f},{y1:.1f} C{bend:.1f},{y1:.1f} {bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    else:
        forward = start.x < end.x
        x1 = start.x + start.width if forward else start.x
        x2 = end.x if forward else end.x + end.width
        mid = (x1 + x2) / 2
        path = f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    colour = COLOURS.get(start.schema, "#757575")
    return f'<path d="{path}" fill="none" stroke="{colour}" stroke-opacity="0.7" marker-end="url(#arrow)"/>'


def render(title: str, lanes: list[list[list[Box]]], edges: list[Edge], legend: dict[str, str]) -> str:
    """The picture as an SVG document: a title, the lanes of boxes, arrows, and a legend
    of the schemas (name → what it holds) under the title."""
    width, height = place(lanes)
    boxes = {box.key: box for lane in lanes for stack in lane for box in stack}
    legend_text = "   ".join(f"■ {name}: {what}" for name, what in legend.items())
    width = max(width, len(legend_text) * CHAR_W * 11 / 12 + 2 * PAD)  # the legend is 11 px
    height += ROW_H
    body = [
        f'<text x="{PAD}" y="18" font-size="15" font-weight="bold">{escape(title)}</text>',
        *(_arrow(edge, boxes) for edge in edges if edge.source in boxes and edge.target in boxes),
        *(_box(box) for box in boxes.values()),
        f'<text x="{PAD}" y="{height - PAD:.1f}" font-size="11">{escape(legend_text)}</text>',
    ]
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" xml:space="preserve" '
            'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">',
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
            f'<rect width="{width:.0f}" height="{height:.0f}" fill="#fafafa"/>',
            *body,
            "</svg>",
            "",
        ]
    )
