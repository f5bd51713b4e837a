"""A slow or failing Prometheus gets a bounded number of requests, each with a timeout: a
few retries with growing waits for "try again" answers, none for a query that timed out.
(A small local HTTP server stands in for a sick Prometheus; the healthy path is tested
against the real one in tests/integration.)"""

import datetime as dt
import http.server
import threading
import time

import pytest

from metering import services
from metering.models import MeteringRun, MetricSource, UsageRecord


class SickPrometheus(http.server.BaseHTTPRequestHandler):
    behaviour = "unavailable"
    requests_seen: list

    def do_GET(self):
        self.requests_seen.append(self.path)
        if self.behaviour == "slow":
            time.sleep(2)
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status":"error","errorType":"unavailable","error":"overloaded"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def sick_prometheus():
    servers = []

    def start(behaviour: str):
        handler = type("Handler", (SickPrometheus,), {"behaviour": behaviour, "requests_seen": []})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", handler.requests_seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def allocation(db, settings):
    settings.METERING_RETRIES = 2
    return MetricSource.objects.get(name="allocation")


def test_an_overloaded_prometheus_is_asked_a_bounded_number_of_times(
    allocation, sick_prometheus, settings
):
    url, seen = sick_prometheus("unavailable")
    allocation.prometheus_url = url
    started = time.monotonic()
    run = services.usage_pull(
        source=allocation,
        start=_hour(0),
        end=_hour(2),
    )
    assert run.status == MeteringRun.Status.FAILED
    assert len(seen) == 1 + settings.METERING_RETRIES
    assert run.error == f"Prometheus at {url} answered 503: overloaded"
    assert time.monotonic() - started < 10  # waits grow, but stay bounded
    assert not UsageRecord.objects.exists()


def test_a_query_that_times_out_is_not_sent_again(allocation, sick_prometheus, settings):
    settings.METERING_QUERY_TIMEOUT_S = 0.5
    url, seen = sick_prometheus("slow")
    allocation.prometheus_url = url
    run = services.usage_pull(source=allocation, start=_hour(0), end=_hour(2))
    assert run.status == MeteringRun.Status.FAILED
    assert len(seen) == 1
    assert run.error.startswith(f"Prometheus at {url} did not answer within 0.5 s")
    assert "timeout=0.5s" in seen[0]  # Prometheus is told to give up too


def _hour(hours: int) -> dt.datetime:
    return dt.datetime(2026, 11, 2, tzinfo=dt.UTC) + dt.timedelta(hours=hours)
