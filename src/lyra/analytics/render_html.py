"""A report as one self-contained HTML file: Chart.js, the views and the data inlined, no network."""

from __future__ import annotations

import html

import orjson

from lyra.analytics.assets import asset
from lyra.analytics.report import Report
from lyra.money import json_default


def _script(text: str) -> str:
    # Inside <script>, only "</" can end the element early; "<\/" means the same to JavaScript.
    return "<script>" + text.replace("</", "<\\/") + "</script>"


def render_html(report: Report) -> str:
    """The page; opening it from disk draws every chart offline."""
    data = orjson.dumps(report.to_dict(), default=json_default).decode().replace("</", "<\\/")
    title = html.escape(f"Lyra report: {report.window.label}")
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>", f"<style>{asset('lyra.css')}</style>",
        _script(asset("chart.umd.min.js")), _script(asset("lyra-charts.js")),
        f"</head><body><h1>{title}</h1>", asset("report-body.html"),
        f'<script type="application/json" id="report-data">{data}</script>',
        _script('LyraCharts.draw(JSON.parse(document.getElementById("report-data").textContent));'),
        "</body></html>",
    ])
