"""Settings come from the environment: each case runs a fresh interpreter with a chosen
environment, as a server or worker would start."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k3y-" + "x7Qp9vLm2Rt8Zc4Nw6Bh1Jd5Fs0Gy3Ke" * 2,
    "ALLOWED_HOSTS": "gpu-portal.example.com",
    "DATABASE_URL": "postgres://portal:secret@db.example.com:5432/portal",
    "CELERY_BROKER_URL": "redis://redis.example.com:6379/0",
}
SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "from portal.celery import app; "
    "print(json.dumps({'db': s.DATABASES['default'], 'broker': app.conf.broker_url, "
    "'transport': app.conf.broker_transport_options, 'tz': s.TIME_ZONE, 'debug': s.DEBUG, "
    "'prometheus': s.PROMETHEUS_URL}, default=str))"
)


def _run(args, **env):
    clean = {
        k: v for k, v in os.environ.items() if k not in {*PRODUCTION, "TIME_ZONE", "PROMETHEUS_URL"}
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "portal.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _settings(**env) -> dict:
    result = _run(["-c", SHOW], **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_deploy_check_is_clean_with_production_variables():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deploy_check_fails_on_the_embedded_defaults():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"])
    assert result.returncode != 0
    assert "security.W018" in result.stderr  # DEBUG on
    assert "security.W009" in result.stderr  # the embedded secret key


def test_production_without_a_secret_key_refuses_to_start():
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = _run(["manage.py", "check"], **env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set in the environment when DEBUG is off." in result.stderr


def test_an_unknown_time_zone_refuses_to_start():
    result = _run(["manage.py", "check"], TIME_ZONE="Europe/Atlantis")
    assert result.returncode != 0
    assert "TIME_ZONE='Europe/Atlantis' is not an IANA time zone." in result.stderr


def test_embedded_defaults_are_sqlite_and_the_filesystem_broker_under_var(tmp_path):
    shown = _settings(PORTAL_VAR_DIR=str(tmp_path))
    assert shown["db"]["ENGINE"] == "django.db.backends.sqlite3"
    assert shown["db"]["NAME"] == str(tmp_path / "portal.sqlite3")
    assert shown["db"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert shown["broker"] == "filesystem://"
    assert shown["transport"]["data_folder_in"] == str(tmp_path / "celery" / "queue")
    assert shown["debug"] is True and shown["tz"] == "UTC"
    assert shown["prometheus"] == "http://127.0.0.1:9090"


def test_production_variables_choose_postgresql_redis_and_the_time_zone():
    shown = _settings(**PRODUCTION, TIME_ZONE="Europe/Berlin", PROMETHEUS_URL="http://prom:9090")
    assert shown["db"]["ENGINE"] == "django.db.backends.postgresql"
    assert (shown["db"]["HOST"], shown["db"]["NAME"], shown["db"]["USER"]) == (
        "db.example.com",
        "portal",
        "portal",
    )
    assert shown["broker"] == "redis://redis.example.com:6379/0"
    # Redis gives an unacknowledged job back after this long (a running one is left alone).
    assert shown["transport"] == {
        "visibility_timeout": 3600,
        "priority_steps": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    }
    assert (shown["tz"], shown["debug"], shown["prometheus"]) == (
        "Europe/Berlin",
        False,
        "http://prom:9090",
    )
