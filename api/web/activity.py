"""CHW activity (``/activity``): who synced when, what waits on tablets, refused writes, visits per day.

The table and the chart come from the same data as ``GET /api/v1/activity``. The chart is
an SVG drawn on the server by pygal with no script (``js=[]``), served as an image of its
own: the pages' Content-Security-Policy allows no inline style, which an inline SVG needs.
"""
from __future__ import annotations

import time
from typing import Any

import pygal
from flask import Response, render_template, request
from pygal.etree import etree
from pygal.style import Style

from sync.errors import CouchError

from ..rest.activity import activity_of_team
from . import bp, page
from .visits import ROLES

MOST_SERIES = 8  # beyond this many CHWs the chart groups the rest, or the legend hides it
STYLE = Style(background="white", plot_background="white", font_family="system-ui, sans-serif",
              colors=("#0b5d4b", "#d08c2e", "#3b6fb6", "#9b3d63", "#5a8f29", "#7a5c99", "#c0504d", "#2f8f9d",
                      "#888888"))


@bp.get("/activity")
@page(*ROLES)
def activity() -> Any:
    """Each CHW's devices, last sync, documents waiting, refused writes and visits per day."""
    try:
        chws, days, stale = activity_of_team()
    except CouchError as exc:
        return render_template("activity.html", chws=[], error=exc.reason, days=14, stale=3, now=time.time()), 400
    return render_template("activity.html", chws=chws, error=None, days=days, stale=stale, now=time.time(),
                           query=request.args.to_dict())


@bp.get("/activity/visits.svg")
@page(*ROLES)
def activity_chart() -> Response:
    """Visits per day of the team, stacked by CHW, as an SVG image."""
    chws, days, _ = activity_of_team()
    chart = pygal.StackedBar(js=[], disable_xml_declaration=True, width=720, height=280, style=STYLE,
                             legend_at_bottom=True, legend_at_bottom_columns=4, show_y_guides=True,
                             x_label_rotation=-45, title=f"Visits per day, last {days} days (UTC)",
                             print_values=False, no_data_text="No visits")
    labels = list(chws[0].visits_per_day) if chws else []
    chart.x_labels = [label[5:] for label in labels]  # MM-DD
    busiest = sorted(chws, key=lambda c: -sum(c.visits_per_day.values()))
    for chw in busiest[:MOST_SERIES]:
        chart.add(chw.name, list(chw.visits_per_day.values()))
    if len(busiest) > MOST_SERIES:
        rest = busiest[MOST_SERIES:]
        chart.add(f"{len(rest)} others", [sum(c.visits_per_day[d] for c in rest) for d in labels])
    resp = Response(without_scripts(chart.render_tree()), mimetype="image/svg+xml")
    resp.headers["Cache-Control"] = "private, no-store"
    # Opened on its own (not as an image) the SVG is a document: it may style itself, nothing more.
    resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return resp


def without_scripts(tree: Any) -> str:
    """The chart as SVG text without pygal's configuration script (dead weight with ``js=[]``)."""
    for parent in list(tree.iter()):
        for child in list(parent):
            if str(child.tag).rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return str(etree.tostring(tree, encoding="unicode"))
