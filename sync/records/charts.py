"""A campaign's progress charts, drawn on the server as SVG with pygal.

Each chart takes the dict ``sync.records.progress.progress`` returns and gives a complete
SVG document. No script is left in it (pygal's tooltip script is turned off and its inline
configuration script removed) and the styles are inside the SVG, so the page shows it as an
image (an SVG ``<image>``) under a CSP of ``default-src 'self'``; the page's tables carry the
same numbers as text.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pygal
from pygal.etree import etree
from pygal.style import Style

from .filters import BAND_NAMES

# pygal appends to sys.meta_path a finder for its map plugins that has no find_spec, so every
# failed import anywhere in the process would then raise an ImportWarning. No maps are drawn here.
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]

Json = dict[str, Any]
COLOURS = {"target": "#9aa5b1", "eligible": "#7fb7a4", "screened": "#0b5d4b", "positive": "#b3261e",
           "made": "#1d4ed8", "completed": "#0b5d4b"}
# Per sex, a light colour for the eligible and a dark one for the screened: female, male, other, unknown.
PAIRS = ("#7fb7a4", "#0b5d4b", "#f2b38f", "#c2410c", "#9aa5b1", "#4b5563", "#c4b5fd", "#6d28d9")


def _style(*colours: str) -> Style:
    """The charts' style, with the series colours in order."""
    return Style(background="#ffffff", plot_background="#ffffff", foreground="#1b1f23",
                 foreground_strong="#1b1f23", foreground_subtle="#6a737d", font_family="system-ui, sans-serif",
                 colors=colours, label_font_size=16, major_label_font_size=16, legend_font_size=16,
                 title_font_size=20, value_font_size=14)


NAMES = ("coverage", "groups", "positivity", "referrals")


WIDTH = 600  # shown scaled to the column: fonts are sized for about half of that on a phone
BARS_PER_AREA = {"coverage": 3, "positivity": 1, "referrals": 2}


def height(name: str, data: Json) -> int:
    """The height of chart ``name`` for ``data``: room for every bar (the page sizes its frame so)."""
    rows = BARS_PER_AREA[name] * len(data["areas"]) if name in BARS_PER_AREA else 6
    return max(320, 130 + 30 * rows)


def _config(title: str, size: int, colours: tuple[str, ...], columns: int = 3) -> dict[str, Any]:
    """Options shared by every chart: no script, the legend below (pygal leaves it too little room)."""
    return {"title": title, "style": _style(*colours), "js": [], "width": WIDTH, "height": size, "explicit_size": True,
            "legend_at_bottom": True, "legend_at_bottom_columns": columns, "truncate_legend": -1,
            "print_values": False, "truncate_label": 28, "no_data_text": "Nothing recorded yet", "margin": 12,
            "margin_bottom": 36}


def _area_label(row: Json) -> str:
    return str(row["area"])


def _svg(chart: Any) -> bytes:
    """The chart as an SVG document without any script element."""
    tree = chart.render_tree()
    for parent in tree.iter():
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return ("<?xml version='1.0' encoding='utf-8'?>\n" + etree.tostring(tree, encoding="unicode")).encode()


def coverage(data: Json) -> bytes:
    """Screened against target and against the eligible population, per area."""
    rows = data["areas"]
    colours = (COLOURS["target"], COLOURS["eligible"], COLOURS["screened"])
    chart = pygal.HorizontalBar(**_config("Coverage per area", height("coverage", data), colours))
    chart.x_labels = [_area_label(r) for r in rows]
    chart.add("Target", [r["target"] for r in rows])
    chart.add("Eligible", [r["eligible"] for r in rows])
    chart.add("Screened", [r["screened"] for r in rows])
    return _svg(chart)


def groups(data: Json) -> bytes:
    """Screened against the eligible population by sex and age band: gaps show as short bars."""
    rows = data["groups"]
    bands = sorted({r["band"] for r in rows}, key=lambda b: BAND_NAMES.index(b) if b in BAND_NAMES else 99)
    chart = pygal.Bar(**_config("Screened and eligible by sex and age band", height("groups", data), PAIRS, 2))
    chart.x_labels = bands
    for sex in dict.fromkeys(r["sex"] for r in rows):
        by_band = {r["band"]: r for r in rows if r["sex"] == sex}
        chart.add(f"{sex}: eligible", [by_band[b]["eligible"] if b in by_band else None for b in bands])
        chart.add(f"{sex}: screened", [by_band[b]["screened"] if b in by_band else None for b in bands])
    return _svg(chart)


def positivity(data: Json) -> bytes:
    """The share of screening visits over a referral threshold, per area (percent)."""
    rows = data["areas"]
    chart = pygal.HorizontalBar(**_config("Positivity per area (%)", height("positivity", data),
                                          (COLOURS["positive"],)))
    chart.x_labels = [_area_label(r) for r in rows]
    chart.add("Positive", [None if r["positivity"] is None else round(100 * r["positivity"], 1) for r in rows])
    return _svg(chart)


def referrals(data: Json) -> bytes:
    """Referrals made from screening visits against those completed, per area."""
    rows = data["areas"]
    colours = (COLOURS["made"], COLOURS["completed"])
    chart = pygal.HorizontalBar(**_config("Referrals made and completed", height("referrals", data), colours))
    chart.x_labels = [_area_label(r) for r in rows]
    chart.add("Made", [r["referred"] for r in rows])
    chart.add("Completed", [r["completed"] for r in rows])
    return _svg(chart)


CHARTS: dict[str, Callable[[Json], bytes]] = {"coverage": coverage, "groups": groups, "positivity": positivity,
                                              "referrals": referrals}
