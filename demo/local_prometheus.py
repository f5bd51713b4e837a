"""A local Prometheus server over backfilled data, for tests, the demo and benchmarks.

The flow is: write OpenMetrics text (:func:`demo.synthetic.write_openmetrics`), turn it
into TSDB blocks with :func:`backfill`, then serve the blocks with :func:`running` (or
:func:`start` and :meth:`PrometheusProcess.stop`). It runs the ``prometheus`` and
``promtool`` binaries found on ``PATH`` (or named by ``PROMETHEUS_BIN`` / ``PROMTOOL_BIN``).

Staleness: a real Prometheus writes a staleness marker when a scraped series disappears,
so instant queries stop seeing it at once. Backfilled blocks have no such markers: a
series that stops is still seen for the whole query lookback (5 minutes by default). Start
the server with ``lookback_delta`` just over the sample step (``"31s"`` for the 30 s step of
the synthetic data) to stand in for them.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "PrometheusNotInstalled",
    "PrometheusProcess",
    "backfill",
    "binaries",
    "running",
    "start",
    "write_config",
]

_RETENTION = "36500d"  # backfilled history may be old; nothing is ever deleted for age


class PrometheusNotInstalled(RuntimeError):
    """The ``prometheus`` or ``promtool`` binary is not on this machine."""


def binaries() -> tuple[str, str]:
    """Paths of the ``prometheus`` and ``promtool`` binaries.

    ``PROMETHEUS_BIN`` and ``PROMTOOL_BIN`` override the ``PATH`` look-up. Raises
    :class:`PrometheusNotInstalled`, saying what was looked for and how to install it.
    """
    wanted = {
        "prometheus": os.environ.get("PROMETHEUS_BIN") or "prometheus",
        "promtool": os.environ.get("PROMTOOL_BIN") or "promtool",
    }
    found = {name: shutil.which(command) for name, command in wanted.items()}
    missing = [f"{name} (looked for {wanted[name]!r})" for name, path in found.items() if not path]
    prometheus, promtool = found["prometheus"], found["promtool"]
    if prometheus is None or promtool is None:
        raise PrometheusNotInstalled(
            f"Prometheus is not installed: not found: {', '.join(missing)}. "
            "Install it with `apt-get install prometheus` (Debian/Ubuntu; it brings both "
            "binaries) or download the release from https://prometheus.io/download/ and "
            "put `prometheus` and `promtool` on PATH, or point PROMETHEUS_BIN and "
            "PROMTOOL_BIN at them."
        )
    return prometheus, promtool


def backfill(
    openmetrics_path: str | PathLike[str],
    data_dir: str | PathLike[str],
    *,
    max_block_duration: str = "744h",
) -> None:
    """Turn an OpenMetrics file into TSDB blocks in ``data_dir`` (created if missing).

    promtool cuts blocks at the largest Prometheus compaction range that fits
    ``max_block_duration`` (486 h for the default 744 h), so 90 days make a handful of
    blocks and the server starts quickly. Samples should be older than about 3 hours, so
    the blocks do not overlap a running server's head. Raises ``RuntimeError`` carrying
    promtool's output when it fails.
    """
    _, promtool = binaries()
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--quiet",
            f"--max-block-duration={max_block_duration}",
            os.fspath(openmetrics_path),
            os.fspath(data_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"promtool could not backfill {os.fspath(openmetrics_path)} "
            f"(exit {result.returncode}):\n{result.stderr.strip() or result.stdout.strip()}"
        )


def write_config(
    path: str | PathLike[str],
    *,
    scrape_targets: list[str] | tuple[str, ...] = (),
    web_targets: list[str] | tuple[str, ...] = (),
    web_token: str = "",
    scrape_interval: str = "15s",
) -> None:
    """Write a minimal ``prometheus.yml``.

    ``scrape_targets`` are ``host:port`` of ``/metrics`` endpoints, scraped as job
    ``portal-workers``; ``web_targets`` those of the portal's web server, scraped as job
    ``portal-web`` (with ``Authorization: Bearer <web_token>`` when a token is given). With
    none, the server only serves what was backfilled.
    """
    # JSON-quoted strings are valid YAML scalars: no YAML library needed.
    lines = ["global:", f"  scrape_interval: {_quoted(scrape_interval)}"]
    jobs = [("portal-workers", scrape_targets, ""), ("portal-web", web_targets, web_token)]
    if any(targets for _, targets, _ in jobs):
        lines.append("scrape_configs:")
    for job, targets, token in jobs:
        if not targets:
            continue
        listed = ", ".join(_quoted(target) for target in targets)
        lines += [
            f"  - job_name: {job}",
            "    static_configs:",
            f"      - targets: [{listed}]",
        ]
        if token:
            lines += ["    authorization:", f"      credentials: {_quoted(token)}"]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class PrometheusProcess:
    """A running Prometheus server on 127.0.0.1, answering at ``url``."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path
    _log: BinaryIO | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10) -> None:
        """Stop the server: terminate, wait ``timeout`` s, then kill. Safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for error messages."""
        with suppress(OSError):
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        return ""


def start(
    data_dir: str | PathLike[str],
    *,
    port: int | None = None,
    config_path: str | PathLike[str] | None = None,
    lookback_delta: str | None = None,
    log_path: str | PathLike[str] | None = None,
    ready_timeout_s: float = 60,
) -> PrometheusProcess:
    """Start Prometheus on 127.0.0.1 over the TSDB in ``data_dir`` and wait until it is ready.

    ``port`` defaults to a free one. Without ``config_path`` a scrape-nothing config is
    written to ``data_dir/prometheus.yml``; the log goes to ``log_path`` or
    ``data_dir/prometheus.log``. ``lookback_delta`` sets ``--query.lookback-delta`` (see the
    module docstring on staleness). Retention is ~100 years, so old backfilled blocks stay.

    Returns once ``/-/ready`` answers 200. If the process exits first, or is not ready after
    ``ready_timeout_s``, it is stopped and ``RuntimeError`` is raised with the log's tail.
    The caller must :meth:`~PrometheusProcess.stop` it; :func:`running` does that.
    """
    prometheus, _ = binaries()
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    if config_path is None:
        config_path = data / "prometheus.yml"
        write_config(config_path)
    log = Path(log_path) if log_path is not None else data / "prometheus.log"
    port = port or _free_port()
    args = [
        prometheus,
        f"--config.file={os.fspath(config_path)}",
        f"--storage.tsdb.path={data}",
        f"--storage.tsdb.retention.time={_RETENTION}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    if lookback_delta is not None:
        args.append(f"--query.lookback-delta={lookback_delta}")
    log_file = log.open("wb")
    try:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            args, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    except BaseException:
        log_file.close()
        raise
    server = PrometheusProcess(
        url=f"http://127.0.0.1:{port}",
        process=process,
        log_path=log,
        data_dir=data,
        _log=log_file,
    )
    try:
        _wait_until_ready(server, port, ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def running(data_dir: str | PathLike[str], **kwargs: Any) -> Iterator[PrometheusProcess]:
    """:func:`start` a server for the ``with`` block and stop it however the block ends."""
    server = start(data_dir, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def _wait_until_ready(server: PrometheusProcess, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"prometheus exited with {server.process.returncode} before it was ready; "
                f"log {server.log_path}:\n{server.log_tail()}"
            )
        if _ready(port):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"prometheus not ready after {timeout_s} s; log {server.log_path}:\n"
                f"{server.log_tail()}"
            )
        time.sleep(0.1)


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/-/ready")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _free_port() -> int:
    # Another process could take the port before Prometheus binds it; on a test machine
    # that race is rare, and Prometheus then exits with a clear "address in use" log.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _quoted(value: str) -> str:
    # A JSON string is a valid YAML scalar, escapes included.
    return json.dumps(value)
