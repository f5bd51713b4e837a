"""Real processes for integration tests: each is stopped when its test ends, pass or fail."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def portal_env(**overrides: str) -> dict[str, str]:
    """The environment of a portal process started by a test."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "PYTHONUNBUFFERED": "1"}
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


@contextlib.contextmanager
def running(
    args: list[str],
    *,
    env: dict[str, str],
    ready: Callable[[], bool],
    log: Path,
    timeout_s: float = 60,
) -> Iterator[subprocess.Popen]:
    """Start ``python args...``, wait until ``ready()``, and stop it however the test ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + timeout_s
            while not ready():
                if process.poll() is not None:
                    pytest.fail(
                        f"{args[0:3]} exited with {process.returncode}:\n{log.read_text()[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"{args[0:3]} not ready after {timeout_s} s:\n{log.read_text()[-3000:]}"
                    )
                time.sleep(0.2)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis database for the tests (TEST_REDIS_URL, by default db 15 on 127.0.0.1)."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        available = True
    except redis.RedisError:
        available = False
    require_service("Redis", available, f"nothing answers at {url}; set TEST_REDIS_URL")
    return url
