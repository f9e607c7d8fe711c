"""Usage analytics: KPIs per model and key, spend trends, signal cost, agreement and routing advice."""

from lyra.analytics.advice import AdviceRules, routing_advice
from lyra.analytics.build import build_report
from lyra.analytics.render_html import render_html
from lyra.analytics.render_text import print_report, report_tables
from lyra.analytics.report import (
    Advice,
    Agreement,
    Cap,
    ClientStats,
    DecisionView,
    KeyStats,
    ModelStats,
    Report,
    Signals,
    Spend,
)
from lyra.analytics.window import Window, WindowError, day, since

__all__ = [
    "Advice",
    "AdviceRules",
    "Agreement",
    "Cap",
    "ClientStats",
    "DecisionView",
    "KeyStats",
    "ModelStats",
    "Report",
    "Signals",
    "Spend",
    "Window",
    "WindowError",
    "build_report",
    "day",
    "print_report",
    "render_html",
    "report_tables",
    "routing_advice",
    "since",
]
