"""Reading a metric source from Prometheus: range queries with ``step=1h``, cut into chunks
that stay under Prometheus' 11,000 points per series, with bounded timeouts and retries.

Nothing here touches the database: :func:`fetch` returns the hour values it read and the
warnings about values it refused, and the service decides what to write.
"""

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import requests
from django.conf import settings
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from core import calendar
from metering.models import Measure, MetricSource
from metering.quantities import SECONDS_PER_HOUR

# Prometheus refuses range queries that would return more than 11,000 points per series.
MAX_POINTS_PER_SERIES = 11_000
QUANTUM = Decimal("0.000001")
ONE = Decimal(1)
LARGEST = Decimal("999999999999")  # what UsageRecord.quantity holds (18 digits, 6 decimals)
MAX_WARNINGS = 50

SeriesKey = tuple[str, str, dt.datetime]  # namespace, GPU model, UTC hour start


class PrometheusError(Exception):
    """Prometheus could not be read; the message says what to do about it."""


@dataclass
class Fetched:
    values: dict[SeriesKey, Decimal] = field(default_factory=dict)
    series: int = 0
    queries: int = 0
    refused: Counter = field(default_factory=Counter)
    first_refused: dict = field(default_factory=dict)

    def refuse(self, reason: str, namespace: str, gpu_model: str, hour: dt.datetime) -> None:
        key = (reason, namespace, gpu_model)
        self.refused[key] += 1
        self.first_refused.setdefault(key, hour)

    def warnings(self) -> list[str]:
        lines = [
            f"{count} {reason} value(s) refused for namespace {namespace!r}, model "
            f"{gpu_model!r}, first in the hour from {self.first_refused[key]:%Y-%m-%d %H:00} UTC"
            for key, count in self.refused.most_common(MAX_WARNINGS)
            for reason, namespace, gpu_model in [key]
        ]
        if len(self.refused) > MAX_WARNINGS:
            lines.append(
                f"… and {len(self.refused) - MAX_WARNINGS} more series with refused values"
            )
        return lines


def base_url(source: MetricSource) -> str:
    return (source.prometheus_url or settings.PROMETHEUS_URL).rstrip("/")


def query_windows(start: dt.datetime, end: dt.datetime) -> Iterator[tuple]:
    """``[start, end)`` cut into the windows one range query reads: ``METERING_QUERY_HOURS``
    hours at most, and always under Prometheus' 11,000 points per series. The one rule for
    the collector, the gap backfill and ``pull_usage``."""
    hours = max(1, min(settings.METERING_QUERY_HOURS, MAX_POINTS_PER_SERIES - 1))
    return calendar.chunks(start, end, hours)


def client(source: MetricSource) -> PrometheusConnect:
    """A client that gives up quickly: a few retries with growing, jittered waits, only
    for answers that say "try again" (429, 502, 503, 504) or a refused connection."""
    retry = Retry(
        total=settings.METERING_RETRIES,
        connect=settings.METERING_RETRIES,
        read=0,  # a query that timed out once would time out again; do not pile them up
        status=settings.METERING_RETRIES,
        backoff_factor=1,
        backoff_jitter=0.5,
        backoff_max=10,
        status_forcelist=(429, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    headers = {"Authorization": source.auth_header} if source.auth_header else None
    return PrometheusConnect(
        url=base_url(source),
        headers=headers,
        retry=retry,
        timeout=(settings.METERING_CONNECT_TIMEOUT_S, settings.METERING_QUERY_TIMEOUT_S),
    )


def _timed_out(exc: Exception) -> bool:
    # With retries configured, urllib3 wraps a read timeout in MaxRetryError, which
    # requests reports as a ConnectionError.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.exceptions.Timeout) or isinstance(reason, ReadTimeoutError)


def _explain(exc: Exception, url: str) -> str:
    if _timed_out(exc):
        return (
            f"Prometheus at {url} did not answer within {settings.METERING_QUERY_TIMEOUT_S} s; "
            "pull a shorter window or raise METERING_QUERY_TIMEOUT_S."
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"Could not reach Prometheus at {url}: is it running, and is the URL right?"
    if isinstance(exc, PrometheusApiClientException):
        message = str(exc)
        found = re.search(r'"error":"((?:[^"\\]|\\.)*)"', message)
        detail = json.loads(f'"{found.group(1)}"') if found else message[:500]
        status = re.search(r"HTTP Status Code (\d+)", message)
        return f"Prometheus at {url} answered {status.group(1) if status else 'an error'}: {detail}"
    return f"Reading Prometheus at {url} failed: {exc}"


def _quantity(raw: str, scale: Decimal = ONE) -> tuple[Decimal | None, str]:
    """The value as the ledger keeps it (``scale``: 3600 turns GPU-hours into GPU-seconds),
    or ``None`` and why it is refused."""
    try:
        value = Decimal(raw) * scale
    except InvalidOperation:
        return None, "unreadable"
    if value.is_nan():
        return None, "NaN"
    if value.is_infinite():
        return None, "infinite"
    if value < 0:
        return None, "negative"
    if value > LARGEST:
        return None, "implausibly large"
    return value.quantize(QUANTUM, rounding=ROUND_HALF_UP), ""


def fetch(
    source: MetricSource,
    start: dt.datetime,
    end: dt.datetime,
    *,
    progress: Callable[[int], None] | None = None,
) -> Fetched:
    """The hour values of ``source`` for the whole UTC hours in ``[start, end)``.

    One range query per chunk, evaluated at each hour's end. NaN, infinite and negative
    values are refused and counted in the warnings, never returned as numbers. Raises
    :class:`PrometheusError` when any chunk cannot be read (then nothing is returned).
    """
    query = source.query()
    url = base_url(source)
    fetched = Fetched()
    seen_series = set()
    with client(source) as prometheus:
        for chunk_start, chunk_end in query_windows(start, end):
            try:
                result = prometheus.custom_query_range(
                    query,
                    start_time=chunk_start + calendar.HOUR,
                    end_time=chunk_end,
                    step="3600",
                    params={"timeout": f"{settings.METERING_QUERY_TIMEOUT_S}s"},
                )
            except (requests.exceptions.RequestException, PrometheusApiClientException) as exc:
                raise PrometheusError(_explain(exc, url)) from exc
            except ValueError as exc:  # an answer that is not JSON
                raise PrometheusError(f"Prometheus at {url} sent an unreadable answer.") from exc
            fetched.queries += 1
            _collect(source, result, fetched, seen_series)
            if progress:
                progress(calendar.hour_count(chunk_start, chunk_end))
    fetched.series = len(seen_series)
    return fetched


def _collect(source: MetricSource, result: list, fetched: Fetched, seen_series: set) -> None:
    # GPU time is kept as GPU-seconds; a source whose query returns GPU-hours is scaled.
    scale = SECONDS_PER_HOUR if source.measure == Measure.GPU_HOURS else ONE
    for series in result:
        labels = series.get("metric", {})
        namespace = labels.get(source.namespace_label, "")
        gpu_model = labels.get(source.model_label, "") if source.model_label else ""
        seen_series.add((namespace, gpu_model))
        for timestamp, raw in series.get("values", []):
            hour_start = dt.datetime.fromtimestamp(float(timestamp), dt.UTC) - calendar.HOUR
            value, refusal = _quantity(raw, scale)
            if value is None:
                fetched.refuse(refusal, namespace, gpu_model, hour_start)
                continue
            key = (namespace, gpu_model, hour_start)
            # Two result series can land on one key when the query keeps extra labels.
            fetched.values[key] = fetched.values.get(key, Decimal(0)) + value
