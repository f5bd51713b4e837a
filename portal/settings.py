"""Settings for the GPU chargeback portal.

Everything that differs between machines comes from the environment (12-factor). The
defaults are the embedded mode: SQLite and a SQLite Celery broker (portal/broker.py) under
``var/``, DEBUG on (``make demo`` runs its worker and web server with DEBUG off). Production
sets at least ``DEBUG=0``, ``SECRET_KEY``, ``ALLOWED_HOSTS``, ``DATABASE_URL`` and
``CELERY_BROKER_URL``; ``manage.py check --deploy`` is then clean (see README,
"Production").
"""

import re
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from django.core.exceptions import ImproperlyConfigured

from portal import broker

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# Everything the embedded mode writes (database, broker queue, job output) lives here.
VAR_DIR = Path(env("PORTAL_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=True)

SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set in the environment when DEBUG is off.")
    SECRET_KEY = "django-insecure-embedded-mode-only-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "portal.apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "simple_history",
    "portal.apps.PortalConfig",
    "departments",
    "metering",
    "jobs",
    "billing",
    "cluster",
    "accounts",
    "demo",
]

MIDDLEWARE = [
    # /metrics for Prometheus, which scrapes pods by address: before the host check.
    "portal.metrics.ScrapeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Times every request but static files, for portal_http_request_duration_seconds.
    "portal.metrics.RequestDurationMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Lets the audit history record who made each change (admin, API and pages alike).
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.tz",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.roles_context",
            ],
        },
    },
]

# --- Database ------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded mode runs the web server, a worker and beat on one file. IMMEDIATE
    # transactions take the write lock up front, so concurrent writers queue on the
    # timeout instead of failing with "database is locked" half-way through.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Authentication ------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Passwords the portal keeps (accounts/backends.py). PASSWORD_LOGIN=0 turns them off
# everywhere (the sign-in page, the admin's and the API token endpoint); with
# PASSWORD_LOGIN_USERS set, only those accounts may still use one: the break-glass account
# for the day the identity provider is down.
PASSWORD_LOGIN = env.bool("PASSWORD_LOGIN", default=True)
PASSWORD_LOGIN_USERS = env.list("PASSWORD_LOGIN_USERS", default=[])
AUTHENTICATION_BACKENDS = [
    "accounts.backends.PasswordBackend",
    "accounts.oidc.ProviderBackend",
]

# Sign-in with the company's identity provider (OpenID Connect, accounts/oidc.py): the
# authorization code flow with PKCE, state and nonce, by mozilla-django-oidc. Set
# OIDC_ISSUER and the client's ID and secret; the endpoints are read from the issuer's
# discovery document (or set one by one with OIDC_OP_*_ENDPOINT). Blank: no OIDC.
OIDC_ISSUER = env("OIDC_ISSUER", default="").rstrip("/")
OIDC_PROVIDER_NAME = env("OIDC_PROVIDER_NAME", default="your company account")
OIDC_RP_CLIENT_ID = env("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env("OIDC_RP_CLIENT_SECRET", default="")
if OIDC_ISSUER and not OIDC_RP_CLIENT_ID:
    raise ImproperlyConfigured("OIDC_ISSUER is set: set OIDC_RP_CLIENT_ID (and its secret) too.")
OIDC_RP_SCOPES = env("OIDC_RP_SCOPES", default="openid email profile groups")
OIDC_RP_SIGN_ALGO = env("OIDC_RP_SIGN_ALGO", default="RS256")
# The claim that lists a person's groups, and the one that names their account.
OIDC_GROUPS_CLAIM = env("OIDC_GROUPS_CLAIM", default="groups")
OIDC_USERNAME_CLAIM = env("OIDC_USERNAME_CLAIM", default="preferred_username")
for _name in ("AUTHORIZATION", "TOKEN", "USER", "JWKS", "LOGOUT"):
    if env(f"OIDC_OP_{_name}_ENDPOINT", default=""):
        vars()[f"OIDC_OP_{_name}_ENDPOINT"] = env(f"OIDC_OP_{_name}_ENDPOINT")
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_STORE_ID_TOKEN = True  # for the provider's sign-out (id_token_hint)
OIDC_TIMEOUT = env.float("OIDC_TIMEOUT_S", default=10)
OIDC_VERIFY_SSL = env.bool("OIDC_VERIFY_SSL", default=True)
# Seconds the discovery document and the provider's keys are kept before they are read
# again; a token signed with a key not seen yet makes the portal read the keys at once
# (at most once per OIDC_JWKS_MIN_REFRESH_S), which is how a rotation is followed.
OIDC_DISCOVERY_CACHE_S = env.int("OIDC_DISCOVERY_CACHE_S", default=3600)
OIDC_JWKS_MIN_REFRESH_S = env.int("OIDC_JWKS_MIN_REFRESH_S", default=30)
# Bearer access tokens from the provider on the API: the audience they must name (default
# the client ID), the algorithms accepted and the clock skew allowed.
OIDC_API_AUDIENCE = env("OIDC_API_AUDIENCE", default=OIDC_RP_CLIENT_ID)
OIDC_API_ALGORITHMS = env.list(
    "OIDC_API_ALGORITHMS",
    default=["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"],
)
OIDC_LEEWAY_S = env.int("OIDC_LEEWAY_S", default=60)

# Personal API tokens (accounts/tokens): how long one lives unless its owner says less,
# and the longest anyone may ask for. Tokens made before personal tokens existed (DRF's)
# keep working until LEGACY_API_TOKENS_UNTIL (a date, YYYY-MM-DD, in TIME_ZONE); blank
# keeps them working and tells their users when IT has not said.
API_TOKEN_DEFAULT_DAYS = env.int("API_TOKEN_DEFAULT_DAYS", default=90)
API_TOKEN_MAX_DAYS = env.int("API_TOKEN_MAX_DAYS", default=366)
LEGACY_API_TOKENS_UNTIL = None
if env("LEGACY_API_TOKENS_UNTIL", default=""):
    try:
        LEGACY_API_TOKENS_UNTIL = date.fromisoformat(env("LEGACY_API_TOKENS_UNTIL"))
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"LEGACY_API_TOKENS_UNTIL={env('LEGACY_API_TOKENS_UNTIL')!r} is not a date "
            "such as 2027-03-31."
        ) from exc

# --- Time ----------------------------------------------------------------------------------
# Storage is always UTC; pages show this zone, and months and days (quota periods,
# statements) are taken in it.
TIME_ZONE = env("TIME_ZONE", default="UTC")
try:
    ZoneInfo(TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError) as exc:
    raise ImproperlyConfigured(f"TIME_ZONE={TIME_ZONE!r} is not an IANA time zone.") from exc
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = True

# --- Static files and job output -----------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# plotly.js is our copy of its basic bundle, static/vendor/plotly/ (its README says why).
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security (on by default whenever DEBUG is off) ----------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers and Kubernetes probe /healthz, and Prometheus scrapes /metrics, over plain
# HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    # Behind the company proxy, which terminates TLS and sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- Cache and rate limits (core/ratelimits.py) ------------------------------------------
# The rate-limit counters live in the default cache. The embedded mode's local memory
# belongs to its one web process; production's web processes share one (Redis), or each
# would count on its own and let through its own full rate.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}


def _rate(name: str, default: str) -> str:
    """A rate from the environment as django-ratelimit reads it: 10/m, 100/5m (s, m, h, d)."""
    rate = env(name, default=default)
    if not re.fullmatch(r"[0-9]+/[0-9]*[smhd]", rate):
        raise ImproperlyConfigured(f"{name}={rate!r} is not a rate such as 10/m or 100/5m.")
    return rate


# Sign-in attempts (the portal's form, the admin's and the API token endpoint together), per
# username and per client address.
RATELIMIT_LOGIN = _rate("RATELIMIT_LOGIN", "10/m")
RATELIMIT_LOGIN_IP = _rate("RATELIMIT_LOGIN_IP", "30/m")
# Behind a proxy every request comes from the proxy's address: name the request header that
# carries the client's own (one address, set by the proxy), e.g. HTTP_X_REAL_IP.
RATELIMIT_IP_META_KEY = env("RATELIMIT_IP_META_KEY", default=None)
# Job submissions per user (the form and the API together).
JOBS_SUBMIT_RATE = _rate("JOBS_SUBMIT_RATE", "60/m")

# --- Email (quota alerts) ------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="gpu-portal@localhost")

# --- Celery --------------------------------------------------------------------------------
# The embedded default is one SQLite file under var/ (portal/broker.py says why and what it
# does not do); production names Redis or RabbitMQ.
CELERY_BROKER_URL = env(
    "CELERY_BROKER_URL", default=broker.sqlite_url(VAR_DIR / "celery" / "broker.sqlite3")
)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Jobs run for minutes or hours: a worker takes one message at a time and acknowledges it
# only when the job has ended (the tasks set acks_late), so a dead worker gives it back.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The SLA priority (0-9, higher first) travels with each job message: RabbitMQ honours it on
# queues declared with a maximum priority; jobs.dispatch turns it around for Redis, where
# 0 is served first.
CELERY_TASK_QUEUE_MAX_PRIORITY = 10
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # An unacknowledged message goes back to the queue after this long; a job that is still
    # running then is left alone (the worker's start is a compare-and-set on its state).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_S", default=3600),
        # One list per priority, so all ten SLA priorities stay apart.
        "priority_steps": list(range(10)),
    }
# Periodic tasks live in the database (editable in the admin); portal/periodic.py declares
# the ones the portal needs and creates them after migrate.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Prometheus ----------------------------------------------------------------------------
# Default base URL of the built-in metric sources.
PROMETHEUS_URL = env("PROMETHEUS_URL", default="http://127.0.0.1:9090")
# Hours per range query (Prometheus allows at most 11,000 points per series).
METERING_QUERY_HOURS = env.int("METERING_QUERY_HOURS", default=168)
METERING_CONNECT_TIMEOUT_S = env.float("METERING_CONNECT_TIMEOUT_S", default=5)
METERING_QUERY_TIMEOUT_S = env.int("METERING_QUERY_TIMEOUT_S", default=120)
METERING_RETRIES = env.int("METERING_RETRIES", default=2)
# The gap backfill looks this far back, and pulls at most this many hours per call.
METERING_GAP_LOOKBACK_HOURS = env.int("METERING_GAP_LOOKBACK_HOURS", default=24 * 40)
METERING_GAP_MAX_HOURS = env.int("METERING_GAP_MAX_HOURS", default=24 * 7)
# A run still "running" after this long belonged to a process that died.
METERING_RUN_ABANDONED_AFTER_S = env.int("METERING_RUN_ABANDONED_AFTER_S", default=6 * 3600)

# --- Jobs --------------------------------------------------------------------------------
# A running job's worker writes a heartbeat this often; a job whose heartbeat is older than
# the stale limit belonged to a worker that died, and is queued again.
JOBS_HEARTBEAT_S = env.float("JOBS_HEARTBEAT_S", default=10)
JOBS_HEARTBEAT_STALE_S = env.int("JOBS_HEARTBEAT_STALE_S", default=60)
# A job whose worker died during this many attempts fails instead of being tried again.
JOBS_MAX_ATTEMPTS = env.int("JOBS_MAX_ATTEMPTS", default=3)
# A queued job that no worker took this long after it was sent is sent again.
JOBS_REDISPATCH_AFTER_S = env.int("JOBS_REDISPATCH_AFTER_S", default=1800)
# Seconds between SIGTERM and SIGKILL when a job is cancelled or runs out of time.
JOBS_STOP_GRACE_S = env.float("JOBS_STOP_GRACE_S", default=10)
JOBS_LOG_TAIL_CHARS = env.int("JOBS_LOG_TAIL_CHARS", default=4000)
# Each worker serves portal_job_gpu_seconds_total here for Prometheus; 0 switches it off.
JOBS_METRICS_PORT = env.int("JOBS_METRICS_PORT", default=0)
JOBS_METRICS_ADDR = env("JOBS_METRICS_ADDR", default="127.0.0.1")
# The web's /metrics: when set, a scrape must send "Authorization: Bearer <token>"; when
# blank, anyone who reaches the web server reads it (department slugs, spend, budgets).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# Where this worker runs, recorded with each job it starts: the Kubernetes namespace of its
# pod (the downward API's POD_NAMESPACE in deploy/) and the slug of its cluster. Billing
# charges a job's GPU time to its department when that namespace is a marked worker pool.
JOBS_WORKER_NAMESPACE = env("JOBS_WORKER_NAMESPACE", default=env("POD_NAMESPACE", default=""))
JOBS_WORKER_CLUSTER = env("JOBS_WORKER_CLUSTER", default="")

# --- Billing -------------------------------------------------------------------------------
# Statements are kept in one currency (ISO 4217); every rate card is priced in it.
# The cluster's objects (cluster/manifests.py): the prefix of the portal's own labels
# (<prefix>/department, <prefix>/cost-centre), the Kueue cohort every department's queue
# shares, and the name of the fleet's one cluster while no Cluster is defined.
CLUSTER_LABEL_PREFIX = env("CLUSTER_LABEL_PREFIX", default="gpu-chargeback-portal")
CLUSTER_COHORT = env("CLUSTER_COHORT", default="gpu-fleet")
CLUSTER_DEFAULT_SLUG = env("CLUSTER_DEFAULT_SLUG", default="default")

BILLING_CURRENCY = env("BILLING_CURRENCY", default="EUR")
# The idle-cost policy a new month starts with: absorbed, shared or charged (finance
# changes it per month in the admin; "charged" needs a department, so it is not a default).
BILLING_IDLE_POLICY = env("BILLING_IDLE_POLICY", default="absorbed")
if BILLING_IDLE_POLICY not in ("absorbed", "shared"):
    raise ImproperlyConfigured("BILLING_IDLE_POLICY must be absorbed or shared.")
# Drafts still open this many hours after their month ended are finalized by the portal.
BILLING_FINALIZE_AFTER_H = env.int("BILLING_FINALIZE_AFTER_H", default=72)
# A day's spend is an anomaly only when it is at least this far (in BILLING_CURRENCY) from
# the department's usual day, so small departments do not flap (billing.anomalies).
BILLING_ANOMALY_MIN_AMOUNT = env("BILLING_ANOMALY_MIN_AMOUNT", default="50")

# --- Alerts and statement mails (billing/notifications.py) ---------------------------------
# The portal's address as people reach it, for the links in mails and webhooks.
PORTAL_URL = env("PORTAL_URL", default="http://127.0.0.1:8000")
# Webhooks may reach addresses in private, loopback or link-local ranges only when this is
# on (the demo, tests) or IT allows it for one channel.
WEBHOOKS_ALLOW_PRIVATE = env.bool("WEBHOOKS_ALLOW_PRIVATE", default=False)
WEBHOOKS_CONNECT_TIMEOUT_S = env.float("WEBHOOKS_CONNECT_TIMEOUT_S", default=5)
WEBHOOKS_READ_TIMEOUT_S = env.float("WEBHOOKS_READ_TIMEOUT_S", default=10)
# Waits between the attempts of a delivery or a mail that failed for a passing reason;
# after the last, it fails for good.
NOTIFICATIONS_RETRY_DELAYS_S = [
    int(s) for s in env.list("NOTIFICATIONS_RETRY_DELAYS_S", default=["60", "300", "1800", "7200"])
]
# A sender that took a delivery and did not record its answer this long after is presumed
# dead, and the delivery is due again.
NOTIFICATIONS_LEASE_S = env.int("NOTIFICATIONS_LEASE_S", default=600)
# Statements finalized this recently whose mail never started are sent by the sweep.
NOTIFICATIONS_CATCH_UP_H = env.int("NOTIFICATIONS_CATCH_UP_H", default=48)
NOTIFICATIONS_QUEUE = env("NOTIFICATIONS_QUEUE", default="celery")

# The FOCUS export (billing/focus.py, docs/focus.md): the billing account is the
# organisation, the provider (invoice issuer and publisher) the IT team that runs the fleet.
FOCUS_BILLING_ACCOUNT_ID = env("FOCUS_BILLING_ACCOUNT_ID", default="organisation")
FOCUS_BILLING_ACCOUNT_NAME = env("FOCUS_BILLING_ACCOUNT_NAME", default="Organisation")
FOCUS_PROVIDER_NAME = env("FOCUS_PROVIDER_NAME", default="IT GPU fleet")

# --- Audit history -------------------------------------------------------------------------
# Departments, their rules, job kinds, metric sources, prices and statements keep a history
# of every change and who made it, shown in the admin. History is a record, not an undo
# button: nobody reverts a row to an old version from it (a finalized statement never
# changes, and prices change by new rate cards).
SIMPLE_HISTORY_REVERT_DISABLED = True

# --- REST API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Bearer first: an anonymous API client gets 401 with a WWW-Authenticate header. A
    # bearer is a personal API token or the identity provider's access token; "Token" is
    # the scheme of the tokens made before personal tokens, kept until a date IT sets.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerAuthentication",
        "accounts.authentication.LegacyTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "core.api.ModelPermissions",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
        "core.api.CSVRenderer",
    ],
    # DRF's three, with JSON nesting bounded (a body nested 1,000 deep is a 400, not a 500).
    # Forms and multipart stay: the browsable API and form-encoded clients send them.
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.api.Pagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api_errors.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "GPU chargeback portal API",
    "DESCRIPTION": (
        "Departments, quotas, service levels and GPU usage of the shared GPU fleet. "
        "Authenticate with a session or with `Authorization: Bearer gcp_…`: a personal API "
        "token, made on Your API tokens (/accounts/tokens/), with /api/v1/tokens/, or by "
        "POSTing username and password to /api/v1/auth/token/. "
        "Every list also renders as CSV with `?format=csv`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # "status" names several choice sets; each gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "billing.models.StatementStatus",
        "DeliveryStatusEnum": "billing.notifications_models.SendingStatus",
        "ApiTokenStatusEnum": "accounts.models.TokenStatus",
    },
    # The error answers DRF and core.api_errors give, documented once for every operation.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.api_schema.document_error_responses",
    ],
    # Served from our own static files: nothing is fetched from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Logging -------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # A retried Prometheus query would log its whole URL; the run records the outcome.
    "loggers": {
        "urllib3.connectionpool": {"level": "ERROR"},
        # Django's own console handler (DEBUG only) would print each of its records a
        # second time beside the root's.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
    },
}
