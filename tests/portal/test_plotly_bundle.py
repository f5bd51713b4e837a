"""The pages load our copy of plotly.js's basic bundle (static/vendor/plotly/): it must be
the plotly.js version the installed plotly package writes figures for, and hold every
trace type the portal's charts draw."""

import ast
import re
from pathlib import Path

import plotly
from django.contrib.staticfiles import finders

ROOT = Path(__file__).resolve().parents[2]
CHART_MODULES = [ROOT / "billing" / "charts.py", ROOT / "metering" / "charts.py"]
# What the basic bundle holds (its README: bar, scatter, pie).
BASIC_TRACES = {"Bar", "Scatter", "Pie"}


def _version(text: str) -> str:
    return re.search(r"plotly\.js(?: \([^)]*\))? v(\d+\.\d+\.\d+)", text[:400]).group(1)


def test_the_bundle_is_the_version_the_plotly_package_writes_for():
    ours = Path(finders.find("vendor/plotly/plotly-basic.min.js")).read_text(encoding="utf-8")
    full = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(
        encoding="utf-8"
    )
    assert _version(ours) == _version(full)


def test_every_trace_the_charts_draw_is_in_the_bundle():
    drawn = set()
    for module in CHART_MODULES:
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "go"
                and node.func.attr != "Figure"
            ):
                drawn.add(node.func.attr)
    assert drawn, "no chart found: the modules moved?"
    assert drawn <= BASIC_TRACES, f"not in the basic bundle: {drawn - BASIC_TRACES}"
