"""deploy/grafana/gpu-portal-dashboard.json: an importable dashboard (a ${DS_PROMETHEUS}
input, a department variable) whose every PromQL expression names only the portal's
metrics, parses, and returns data when a real Prometheus (the distribution's binary, over
history backfilled with promtool) holds those metrics."""

import datetime as dt
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_prometheus

# One Prometheus for the module: keep its tests on one xdist worker.
pytestmark = pytest.mark.xdist_group("grafana-dashboard")

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "gpu-portal-dashboard.json"

# The portal's metrics (the web's /metrics and the GPU workers' job counter), by type.
GAUGES = {
    "portal_department_spend_month_to_date": ("department", "currency"),
    "portal_budget_used_ratio": ("department", "scope"),
    "portal_budget_limit_gpu_hours": ("department", "scope"),
    "portal_budget_used_gpu_hours": ("department", "scope"),
    "portal_jobs": ("department", "tier", "state"),
    "portal_metering_lag_seconds": ("source",),
    "portal_cluster_drifts": ("cluster",),
}
HISTOGRAMS = {"portal_http_request_duration_seconds": ("method", "view", "status")}
COUNTERS = {"portal_job_gpu_seconds_total": ("namespace", "gpu_class", "kind")}
METRICS = {**GAUGES, **HISTOGRAMS, **COUNTERS}
# The series names PromQL may use: a histogram is read through its _bucket, _sum, _count.
SERIES = (
    set(GAUGES)
    | set(COUNTERS)
    | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
)

# What Grafana puts in place of its variables before it sends a query.
GRAFANA_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "department": "(marketing|training)",
}

_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "inf", "nan", "atan2",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: the identifiers that are not a
    function, an aggregation, a keyword, a label or a duration."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    names = set()
    for found in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = found.group()
        if text[found.end() :].lstrip().startswith("("):
            continue  # a function call
        if word in _AGGREGATIONS or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def test_metric_names_finds_the_names_and_only_them():
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, view) (rate(a_bucket{view=~"x|y"}[5m])))'
    ) == {"a_bucket"}
    assert metric_names("count(b >= 1) or vector(0)") == {"b"}
    assert metric_names("sum(rate(c_total[5m] offset 1h)) / sum without (x) (d) * 1e-3") == {
        "c_total",
        "d",
    }
    assert metric_names('e{__name__="f"} and on (g) h') == {"e", "h"}


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _targets() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def _substituted(expr: str) -> str:
    def value(found: re.Match) -> str:
        variable = found.group(1) or found.group(2)
        assert variable in GRAFANA_VARIABLES, f"unknown Grafana variable ${variable} in {expr}"
        return GRAFANA_VARIABLES[variable]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def test_the_dashboard_imports_with_a_prometheus_input_and_a_department_variable():
    dashboard = _dashboard()
    assert dashboard["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": dashboard["__inputs"][0]["description"],
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    source = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for panel in _panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == source, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == source, panel["title"]
    [department] = [v for v in dashboard["templating"]["list"] if v["name"] == "department"]
    assert department["datasource"] == source
    assert department["query"]["query"] == (
        "label_values(portal_department_spend_month_to_date, department)"
    )
    ids = [panel["id"] for panel in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


def test_every_expression_names_only_the_portals_metrics_and_all_are_shown():
    used = set()
    for title, expr in _targets():
        names = metric_names(expr)
        assert names, f"{title}: {expr} selects no metric"
        assert names <= SERIES, f"{title}: {expr} names {sorted(names - SERIES)}"
        used |= names
    shown = {name for name in METRICS if any(s.startswith(name) for s in used)}
    assert shown == set(METRICS), f"not on the dashboard: {sorted(set(METRICS) - shown)}"


def test_the_department_variable_filters_every_panel_that_has_departments():
    for title, expr in _targets():
        for name in metric_names(expr):
            if "department" in METRICS.get(name, ()):
                assert re.search(rf'{name}\{{[^}}]*department=~"\$department"', expr), title


# --- against a real Prometheus ---------------------------------------------------------

STEP_S = 60
HISTORY_S = 3 * 3600


def _openmetrics(end: dt.datetime) -> str:
    """Every metric of the portal with labels it has in production, for HISTORY_S up to
    ``end``: gauges, a counter that grows, and a histogram with a 5xx share."""
    start = int(end.timestamp()) - HISTORY_S
    times = range(start, int(end.timestamp()) + 1, STEP_S)
    departments = ("marketing", "training")
    series: dict[str, list[tuple[dict, object]]] = {
        "portal_department_spend_month_to_date": [
            ({"department": d, "currency": "EUR"}, lambda t, i=i: 100.0 * (i + 1) + t % 7)
            for i, d in enumerate(departments)
        ],
        "portal_jobs": [
            ({"department": d, "tier": tier, "state": state}, lambda t: 2.0)
            for d in departments
            for tier in ("realtime", "interactive", "batch")
            for state in ("queued", "waiting", "running")
        ],
        "portal_metering_lag_seconds": [
            ({"source": source}, lambda t: 1800.0) for source in ("allocation", "jobs")
        ],
        "portal_cluster_drifts": [({"cluster": "prod-eu"}, lambda t: 1.0)],
    }
    for name, ratio in (
        ("portal_budget_used_ratio", lambda used, limit: used / limit),
        ("portal_budget_used_gpu_hours", lambda used, limit: used),
        ("portal_budget_limit_gpu_hours", lambda used, limit: limit),
    ):
        series[name] = [
            ({"department": d, "scope": scope}, lambda t, r=ratio, u=used, lim=lim: r(u, lim))
            for d, scope, used, lim in (
                ("marketing", "all", 900.0, 1000.0),
                ("marketing", "t4", 110.0, 100.0),
                ("training", "a100", 50.0, 400.0),
            )
        ]
    lines = []
    for name, entries in series.items():
        lines.append(f"# TYPE {name} gauge")
        for labels, value in entries:
            lines += [f"{name}{_labels(labels)} {value(t)} {t}" for t in times]
    lines.append("# TYPE portal_job_gpu_seconds counter")
    for gpu_class, kind in (("a100", "llm-text"), ("t4", "lipsync-render")):
        labels = {"namespace": "gpu-workers", "gpu_class": gpu_class, "kind": kind}
        lines += [
            f"portal_job_gpu_seconds_total{_labels(labels)} {float(t - start)} {t}" for t in times
        ]
    lines.append("# TYPE portal_http_request_duration_seconds histogram")
    for status, per_s in (("200", 10), ("500", 1)):
        labels = {"method": "GET", "view": "home", "status": status}
        for t in times:
            n = (t - start) * per_s
            for le, share in (("0.1", 0.5), ("0.5", 0.9), ("1.0", 0.99), ("+Inf", 1.0)):
                count = float(int(n * share))
                lines.append(
                    f"portal_http_request_duration_seconds_bucket"
                    f"{_labels({**labels, 'le': le})} {count} {t}"
                )
            lines.append(
                f"portal_http_request_duration_seconds_count{_labels(labels)} {float(n)} {t}"
            )
            lines.append(f"portal_http_request_duration_seconds_sum{_labels(labels)} {n * 0.2} {t}")
    # Each family's samples together, each series' in time order, as OpenMetrics wants.
    return "\n".join(lines) + "\n# EOF\n"


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A real Prometheus over the portal's metrics, and the time to query it at."""
    from demo import local_prometheus

    require_prometheus()
    root = tmp_path_factory.mktemp("dashboard-prometheus")
    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    (root / "metrics.om").write_text(_openmetrics(end), encoding="utf-8")
    local_prometheus.backfill(root / "metrics.om", root / "data")
    with local_prometheus.running(root / "data", log_path=root / "prometheus.log") as server:
        yield server.url, end


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _query(prometheus, expr: str) -> tuple[int, dict]:
    url, at = prometheus
    params = urllib.parse.urlencode({"query": expr, "time": at.timestamp()})
    return _get(f"{url}/api/v1/query?{params}")


def test_prometheus_refuses_a_broken_expression(prometheus):
    status, answer = _query(prometheus, "sum by (department (portal_jobs)")
    assert status == 400
    assert answer["errorType"] == "bad_data"


@pytest.mark.parametrize(("title", "expr"), _targets(), ids=[t for t, _ in _targets()])
def test_every_expression_parses_and_returns_data(prometheus, title, expr):
    status, answer = _query(prometheus, _substituted(expr))
    assert status == 200 and answer["status"] == "success", f"{title}: {expr}: {answer}"
    assert answer["data"]["result"], f"{title}: {expr} returns nothing over the portal's metrics"


def test_the_department_variable_lists_the_departments(prometheus):
    url, at = prometheus
    [variable] = [v for v in _dashboard()["templating"]["list"] if v["name"] == "department"]
    metric, label = re.fullmatch(
        r"label_values\((\w+), (\w+)\)", variable["query"]["query"]
    ).groups()
    params = urllib.parse.urlencode(
        {"match[]": metric, "start": at.timestamp() - 3600, "end": at.timestamp()}
    )
    status, answer = _get(f"{url}/api/v1/label/{label}/values?{params}")
    assert status == 200
    assert answer["data"] == ["marketing", "training"]
