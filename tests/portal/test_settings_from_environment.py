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
    "CACHE_URL": "redis://redis.example.com:6379/1",
}
RATES = ("RATELIMIT_LOGIN", "RATELIMIT_LOGIN_IP", "RATELIMIT_IP_META_KEY", "JOBS_SUBMIT_RATE")
SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "from portal.celery import app; "
    "print(json.dumps({'db': s.DATABASES['default'], 'broker': app.conf.broker_url, "
    "'transport': app.conf.broker_transport_options, 'tz': s.TIME_ZONE, 'debug': s.DEBUG, "
    "'prometheus': s.PROMETHEUS_URL, 'cache': s.CACHES['default'], "
    "'rates': [s.RATELIMIT_LOGIN, s.RATELIMIT_LOGIN_IP, s.JOBS_SUBMIT_RATE], "
    "'ip_meta_key': s.RATELIMIT_IP_META_KEY}, default=str))"
)


def _run(args, **env):
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {*PRODUCTION, *RATES, "TIME_ZONE", "PROMETHEUS_URL"}
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


def test_check_is_clean_on_the_embedded_defaults(tmp_path):
    result = _run(["manage.py", "check", "--fail-level", "WARNING"], PORTAL_VAR_DIR=str(tmp_path))
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


def test_embedded_defaults_are_sqlite_and_the_sqlite_broker_under_var(tmp_path):
    shown = _settings(PORTAL_VAR_DIR=str(tmp_path))
    assert shown["db"]["ENGINE"] == "django.db.backends.sqlite3"
    assert shown["db"]["NAME"] == str(tmp_path / "portal.sqlite3")
    assert shown["db"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert shown["broker"] == f"sqlite:///{tmp_path.resolve() / 'celery' / 'broker.sqlite3'}"
    assert shown["debug"] is True and shown["tz"] == "UTC"
    assert shown["prometheus"] == "http://127.0.0.1:9090"
    # The rate-limit counters: local memory, for the embedded mode's one web process.
    assert shown["cache"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert shown["rates"] == ["10/m", "30/m", "60/m"]
    assert shown["ip_meta_key"] is None


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
    # Every web process counts rate limits in the same Redis.
    assert shown["cache"] == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://redis.example.com:6379/1",
    }


def test_rate_limits_come_from_the_environment():
    shown = _settings(
        RATELIMIT_LOGIN="5/m",
        RATELIMIT_LOGIN_IP="100/5m",
        JOBS_SUBMIT_RATE="600/h",
        RATELIMIT_IP_META_KEY="HTTP_X_REAL_IP",
    )
    assert shown["rates"] == ["5/m", "100/5m", "600/h"]
    assert shown["ip_meta_key"] == "HTTP_X_REAL_IP"


def test_a_rate_that_is_not_a_rate_refuses_to_start():
    result = _run(["manage.py", "check"], JOBS_SUBMIT_RATE="60 per minute")
    assert result.returncode != 0
    assert "JOBS_SUBMIT_RATE='60 per minute' is not a rate such as 10/m or 100/5m." in (
        result.stderr
    )


def test_sign_in_settings_come_from_the_environment():
    show = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.OIDC_ISSUER, s.OIDC_RP_CLIENT_ID, s.OIDC_API_AUDIENCE, "
        "s.PASSWORD_LOGIN, s.PASSWORD_LOGIN_USERS, str(s.LEGACY_API_TOKENS_UNTIL), "
        "s.OIDC_OP_LOGOUT_ENDPOINT]))"
    )
    result = _run(
        ["-c", show],
        OIDC_ISSUER="https://login.example.com/realms/corp/",
        OIDC_RP_CLIENT_ID="gpu-portal",
        OIDC_OP_LOGOUT_ENDPOINT="https://login.example.com/logout",
        PASSWORD_LOGIN="0",
        PASSWORD_LOGIN_USERS="break-glass,root",
        LEGACY_API_TOKENS_UNTIL="2027-03-31",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        "https://login.example.com/realms/corp",
        "gpu-portal",
        "gpu-portal",
        False,
        ["break-glass", "root"],
        "2027-03-31",
        "https://login.example.com/logout",
    ]


def test_an_issuer_without_a_client_refuses_to_start():
    result = _run(["manage.py", "check"], OIDC_ISSUER="https://login.example.com")
    assert result.returncode != 0
    assert "OIDC_ISSUER is set: set OIDC_RP_CLIENT_ID" in result.stderr


def test_a_legacy_token_date_that_is_not_a_date_refuses_to_start():
    result = _run(["manage.py", "check"], LEGACY_API_TOKENS_UNTIL="next spring")
    assert result.returncode != 0
    assert "LEGACY_API_TOKENS_UNTIL='next spring' is not a date" in result.stderr
