"""Who gets what: every API endpoint and every page, requested as each role.

``member`` and ``manager`` belong to marketing; ``other_manager`` manages training, so every
marketing object is "another department's" for them and must answer 404 (reads) or 403
(writes, refused before any lookup, so equally silent about existence).
"""

import pytest

from tests.billing import test_api_permissions as billing_api_table
from tests.billing import test_page_permissions as billing_page_table
from tests.conftest import ROLES, client_as


def expect(anonymous, member, manager, other_manager, finance, it_admin):
    return dict(
        zip(ROLES, (anonymous, member, manager, other_manager, finance, it_admin), strict=True)
    )


READ_ALL = expect(401, 200, 200, 200, 200, 200)


def _cluster():
    from departments.models import Cluster

    return Cluster.objects.get_or_create(slug="prod-eu", defaults={"name": "Prod EU"})[0]


def _pool():
    from departments.models import WorkerPool

    return WorkerPool.objects.get_or_create(namespace="gpu-workers")[0]


def _channel(department):
    from billing.models import AlertChannel

    return AlertChannel.objects.get_or_create(
        department=department, name="ops", defaults={"kind": "email", "emails": ["o@example.com"]}
    )[0]


def _delivery(department):
    from billing.models import Delivery

    return Delivery.objects.get_or_create(
        channel=_channel(department), event_key="quota:1:2026-11:80", defaults={"subject": "s"}
    )[0]


def _role_mapping(world):
    """The identity provider's group that makes marketing's managers (made once)."""
    from accounts.models import RoleMapping

    return RoleMapping.objects.get_or_create(
        group="mkt-leads", role="manager", department=world.marketing
    )[0]


def _token(user):
    """A personal API token of ``user`` (made once)."""
    from accounts import tokens
    from accounts.models import ApiToken

    made = ApiToken.objects.filter(user=user, name="script").first()
    return made or tokens.api_token_create(user=user, name="script").token


# A personal API token is its owner's alone: finance and IT included, anyone else gets 404.
OWNER_ONLY = expect(401, 404, 200, 404, 404, 404)

READ_MARKETING = expect(401, 200, 200, 404, 200, 200)
READ_TRAINING = expect(401, 404, 404, 200, 200, 200)


def writes(success):
    return expect(401, 403, 403, 403, 403, success)


# (name, method, url(world), body(world) or None, expected statuses)
API = [
    ("api root", "get", lambda w: "/api/v1/", None, READ_ALL),
    (
        "cluster manifests",
        "get",
        lambda w: "/api/v1/cluster/manifests/",
        None,
        expect(401, 403, 403, 403, 403, 200),
    ),
    (
        "cluster manifests of a department",
        "get",
        lambda w: "/api/v1/cluster/manifests/?department=marketing",
        None,
        expect(401, 403, 403, 403, 403, 200),
    ),
    (
        "cluster drift",
        "get",
        lambda w: "/api/v1/cluster/drift/",
        None,
        expect(401, 403, 403, 403, 403, 200),
    ),
    (
        "cluster drift of a department",
        "get",
        lambda w: "/api/v1/cluster/drift/?department=marketing",
        None,
        expect(401, 403, 403, 403, 403, 200),
    ),
    ("department list", "get", lambda w: "/api/v1/departments/", None, READ_ALL),
    ("department list csv", "get", lambda w: "/api/v1/departments/?format=csv", None, READ_ALL),
    ("own department", "get", lambda w: "/api/v1/departments/marketing/", None, READ_MARKETING),
    ("other department", "get", lambda w: "/api/v1/departments/training/", None, READ_TRAINING),
    (
        "department csv",
        "get",
        lambda w: "/api/v1/departments/marketing/?format=csv",
        None,
        READ_MARKETING,
    ),
    (
        "department create",
        "post",
        lambda w: "/api/v1/departments/",
        lambda w: {
            "name": "Research",
            "slug": "research",
            "cost_centre": "CC-7000",
            "namespaces": ["dept-research"],
        },
        writes(201),
    ),
    (
        "department update",
        "patch",
        lambda w: "/api/v1/departments/marketing/",
        lambda w: {"cost_centre": "CC-4999"},
        writes(200),
    ),
    (
        "department delete is not offered",
        "delete",
        lambda w: "/api/v1/departments/marketing/",
        None,
        writes(405),
    ),
    ("gpu class list", "get", lambda w: "/api/v1/gpu-classes/", None, READ_ALL),
    ("gpu class", "get", lambda w: "/api/v1/gpu-classes/a100/", None, READ_ALL),
    (
        "gpu class create",
        "post",
        lambda w: "/api/v1/gpu-classes/",
        lambda w: {"name": "H100", "slug": "h100", "model_regex": ".*H100.*", "capacity_gpus": 4},
        writes(201),
    ),
    (
        "gpu class update",
        "patch",
        lambda w: "/api/v1/gpu-classes/t4/",
        lambda w: {"capacity_gpus": 20},
        writes(200),
    ),
    (
        "gpu class delete (in use by an SLA)",
        "delete",
        lambda w: "/api/v1/gpu-classes/a100/",
        None,
        writes(409),
    ),
    ("quota list", "get", lambda w: "/api/v1/quotas/", None, READ_ALL),
    ("own quota", "get", lambda w: f"/api/v1/quotas/{w.marketing_quota.pk}/", None, READ_MARKETING),
    ("other quota", "get", lambda w: f"/api/v1/quotas/{w.training_quota.pk}/", None, READ_TRAINING),
    (
        "quota create",
        "post",
        lambda w: "/api/v1/quotas/",
        lambda w: {
            "department": "marketing",
            "kind": "concurrent_jobs",
            "limit": "3",
            "enforcement": "hard_queue",
        },
        writes(201),
    ),
    (
        "quota update",
        "patch",
        lambda w: f"/api/v1/quotas/{w.marketing_quota.pk}/",
        lambda w: {"limit": "60"},
        writes(200),
    ),
    (
        "quota delete",
        "delete",
        lambda w: f"/api/v1/quotas/{w.marketing_quota.pk}/",
        None,
        writes(204),
    ),
    ("service level list", "get", lambda w: "/api/v1/service-levels/", None, READ_ALL),
    (
        "own service level",
        "get",
        lambda w: f"/api/v1/service-levels/{w.marketing_sla.pk}/",
        None,
        READ_MARKETING,
    ),
    (
        "other service level",
        "get",
        lambda w: f"/api/v1/service-levels/{w.training_sla.pk}/",
        None,
        READ_TRAINING,
    ),
    (
        "service level create",
        "post",
        lambda w: "/api/v1/service-levels/",
        lambda w: {
            "department": "marketing",
            "tier": "realtime",
            "priority": 9,
            "latency_target_ms": 800,
            "gpu_classes": ["a100"],
        },
        writes(201),
    ),
    (
        "service level update",
        "patch",
        lambda w: f"/api/v1/service-levels/{w.marketing_sla.pk}/",
        lambda w: {"priority": 3},
        writes(200),
    ),
    (
        "service level delete",
        "delete",
        lambda w: f"/api/v1/service-levels/{w.marketing_sla.pk}/",
        None,
        writes(204),
    ),
    ("off-peak list", "get", lambda w: "/api/v1/off-peak-windows/", None, READ_ALL),
    (
        "off-peak window",
        "get",
        lambda w: f"/api/v1/off-peak-windows/{w.off_peak.pk}/",
        None,
        READ_ALL,
    ),
    (
        "off-peak create",
        "post",
        lambda w: "/api/v1/off-peak-windows/",
        lambda w: {
            "name": "Weekend",
            "weekdays": [5, 6],
            "start_time": "00:00",
            "end_time": "00:00",
            "time_zone": "Europe/Berlin",
            "price_multiplier": "0.5",
        },
        writes(201),
    ),
    (
        "off-peak update",
        "patch",
        lambda w: f"/api/v1/off-peak-windows/{w.off_peak.pk}/",
        lambda w: {"price_multiplier": "0.7"},
        writes(200),
    ),
    (
        "off-peak delete",
        "delete",
        lambda w: f"/api/v1/off-peak-windows/{w.off_peak.pk}/",
        None,
        writes(204),
    ),
    ("cluster list", "get", lambda w: "/api/v1/clusters/", None, READ_ALL),
    ("cluster", "get", lambda w: f"/api/v1/clusters/{_cluster().slug}/", None, READ_ALL),
    (
        "cluster create",
        "post",
        lambda w: "/api/v1/clusters/",
        lambda w: {"name": "Prod US", "slug": "prod-us"},
        writes(201),
    ),
    (
        "cluster update",
        "patch",
        lambda w: f"/api/v1/clusters/{_cluster().slug}/",
        lambda w: {"description": "Frankfurt"},
        writes(200),
    ),
    (
        "cluster delete",
        "delete",
        lambda w: f"/api/v1/clusters/{_cluster().slug}/",
        None,
        writes(204),
    ),
    ("worker pool list", "get", lambda w: "/api/v1/worker-pools/", None, READ_ALL),
    ("worker pool", "get", lambda w: f"/api/v1/worker-pools/{_pool().pk}/", None, READ_ALL),
    (
        "worker pool create",
        "post",
        lambda w: "/api/v1/worker-pools/",
        lambda w: {"namespace": "render-workers"},
        writes(201),
    ),
    (
        "worker pool update",
        "patch",
        lambda w: f"/api/v1/worker-pools/{_pool().pk}/",
        lambda w: {"description": "A100 and T4 workers"},
        writes(200),
    ),
    (
        "worker pool delete",
        "delete",
        lambda w: f"/api/v1/worker-pools/{_pool().pk}/",
        None,
        writes(204),
    ),
    # Usage: a member reads an empty list (members see their own jobs, not the
    # department's usage); a department filter outside what the user can see is refused
    # like an unknown slug (400), never 403/404 that would confirm it exists.
    ("usage list", "get", lambda w: "/api/v1/usage/", None, READ_ALL),
    ("usage csv", "get", lambda w: "/api/v1/usage/?format=csv", None, READ_ALL),
    (
        "usage of own department",
        "get",
        lambda w: "/api/v1/usage/?department=marketing",
        None,
        expect(401, 200, 200, 400, 200, 200),
    ),
    (
        "usage of other department",
        "get",
        lambda w: "/api/v1/usage/?department=training&format=csv",
        None,
        expect(401, 400, 400, 200, 200, 200),
    ),
    (
        "usage is read-only (nobody may add usage records)",
        "post",
        lambda w: "/api/v1/usage/",
        lambda w: {"department": "marketing", "quantity": "1"},
        expect(401, 403, 403, 403, 403, 403),
    ),
    # Forecasts are scoped like usage: a member reads no rows (200, empty), a department
    # outside what the user can see is refused like an unknown slug (400).
    ("forecast", "get", lambda w: "/api/v1/forecast/", None, READ_ALL),
    ("forecast csv", "get", lambda w: "/api/v1/forecast/?format=csv", None, READ_ALL),
    (
        "forecast of own department",
        "get",
        lambda w: "/api/v1/forecast/?department=marketing",
        None,
        expect(401, 200, 200, 400, 200, 200),
    ),
    (
        "forecast of other department",
        "get",
        lambda w: "/api/v1/forecast/?department=training&format=csv",
        None,
        expect(401, 400, 400, 200, 200, 200),
    ),
    (
        "forecast is read-only",
        "post",
        lambda w: "/api/v1/forecast/",
        lambda w: {"department": "marketing"},
        expect(401, 403, 403, 403, 403, 403),
    ),
    ("openapi schema", "get", lambda w: "/api/schema/", None, READ_ALL),
    # --- Personal API tokens: everyone signed in manages their own, and only their own.
    ("own token list", "get", lambda w: "/api/v1/tokens/", None, READ_ALL),
    (
        "manager's token",
        "get",
        lambda w: f"/api/v1/tokens/{_token(w.user('manager')).pk}/",
        None,
        OWNER_ONLY,
    ),
    (
        "token create",
        "post",
        lambda w: "/api/v1/tokens/",
        lambda w: {"name": "nightly export", "days": 30},
        expect(401, 201, 201, 201, 201, 201),
    ),
    (
        "manager's token revoke",
        "post",
        lambda w: f"/api/v1/tokens/{_token(w.user('manager')).pk}/revoke/",
        None,
        OWNER_ONLY,
    ),
    # --- Alert channels: IT and finance read all, managers their departments' (and write
    # them), members none; finance does not write them.
    ("alert channel list", "get", lambda w: "/api/v1/alert-channels/", None, READ_ALL),
    (
        "own alert channel",
        "get",
        lambda w: f"/api/v1/alert-channels/{_channel(w.marketing).pk}/",
        None,
        expect(401, 404, 200, 404, 200, 200),
    ),
    (
        "other alert channel",
        "get",
        lambda w: f"/api/v1/alert-channels/{_channel(w.training).pk}/",
        None,
        expect(401, 404, 404, 200, 200, 200),
    ),
    (
        "alert channel create",
        "post",
        lambda w: "/api/v1/alert-channels/",
        lambda w: {
            "department": "marketing",
            "name": "finance desk",
            "kind": "email",
            "emails": ["desk@example.com"],
        },
        expect(401, 403, 201, 400, 403, 201),
    ),
    (
        "alert channel update",
        "patch",
        lambda w: f"/api/v1/alert-channels/{_channel(w.marketing).pk}/",
        lambda w: {"emails": ["ops2@example.com"]},
        expect(401, 403, 200, 404, 403, 200),
    ),
    (
        "alert channel delete",
        "delete",
        lambda w: f"/api/v1/alert-channels/{_channel(w.marketing).pk}/",
        None,
        expect(401, 403, 204, 404, 403, 204),
    ),
    # --- Sign-in: IT maps the identity provider's groups to roles; finance reads them.
    ("role mapping list", "get", lambda w: "/api/v1/role-mappings/", None, READ_ALL),
    (
        "role mapping",
        "get",
        lambda w: f"/api/v1/role-mappings/{_role_mapping(w).pk}/",
        None,
        expect(401, 404, 404, 404, 200, 200),
    ),
    (
        "role mapping create",
        "post",
        lambda w: "/api/v1/role-mappings/",
        lambda w: {"group": "trn-staff", "role": "member", "department": "training"},
        expect(401, 403, 403, 403, 403, 201),
    ),
    (
        "role mapping update",
        "patch",
        lambda w: f"/api/v1/role-mappings/{_role_mapping(w).pk}/",
        lambda w: {"note": "leads of marketing"},
        expect(401, 403, 403, 403, 403, 200),
    ),
    (
        "role mapping delete",
        "delete",
        lambda w: f"/api/v1/role-mappings/{_role_mapping(w).pk}/",
        None,
        expect(401, 403, 403, 403, 403, 204),
    ),
    ("alert delivery list", "get", lambda w: "/api/v1/alert-deliveries/", None, READ_ALL),
    (
        "own alert delivery",
        "get",
        lambda w: f"/api/v1/alert-deliveries/{_delivery(w.marketing).pk}/",
        None,
        expect(401, 404, 200, 404, 200, 200),
    ),
    (
        "other alert delivery",
        "get",
        lambda w: f"/api/v1/alert-deliveries/{_delivery(w.training).pk}/",
        None,
        expect(401, 404, 404, 200, 200, 200),
    ),
    (
        "alert deliveries are read-only",
        "post",
        lambda w: "/api/v1/alert-deliveries/",
        lambda w: {"event_key": "x"},
        expect(401, 405, 405, 405, 405, 405),
    ),
    # --- Jobs: finance and IT read every job, managers their department's, members their own.
    ("job list", "get", lambda w: "/api/v1/jobs/", None, READ_ALL),
    ("job list csv", "get", lambda w: "/api/v1/jobs/?format=csv", None, READ_ALL),
    (
        "manager's job",
        "get",
        lambda w: f"/api/v1/jobs/{w.manager_job.pk}/",
        None,
        expect(401, 404, 200, 404, 200, 200),
    ),
    (
        "member's own job",
        "get",
        lambda w: f"/api/v1/jobs/{w.member_job.pk}/",
        None,
        READ_MARKETING,
    ),
    (
        "job submit",
        "post",
        lambda w: "/api/v1/jobs/",
        lambda w: {"department": "marketing", "kind": "lipsync-render", "tier": "batch"},
        # Only members submit; for anyone else the department is not one they can name.
        expect(401, 201, 201, 400, 400, 400),
    ),
    (
        "job cancel",
        "post",
        lambda w: f"/api/v1/jobs/{w.member_job.pk}/cancel/",
        None,
        expect(401, 200, 200, 404, 403, 200),
    ),
    (
        "job output download",
        "get",
        lambda w: f"/api/v1/jobs/{w.manager_job.pk}/files/result.txt/",
        None,
        expect(401, 404, 200, 404, 200, 200),
    ),
    (
        "job log download",
        "get",
        lambda w: f"/api/v1/jobs/{w.manager_job.pk}/files/job.log/",
        None,
        expect(401, 404, 200, 404, 200, 200),
    ),
    ("job kind list", "get", lambda w: "/api/v1/job-kinds/", None, READ_ALL),
    ("job kind", "get", lambda w: "/api/v1/job-kinds/lipsync-render/", None, READ_ALL),
    (
        "job kind create",
        "post",
        lambda w: "/api/v1/job-kinds/",
        lambda w: {
            "name": "Speech",
            "slug": "speech",
            "argv_template": ["espeak-ng", "-w", "{output_dir}/speech.wav", "{text}"],
            "params_schema": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
                "additionalProperties": False,
            },
            "max_runtime_s": 60,
        },
        writes(201),
    ),
    (
        "job kind update",
        "patch",
        lambda w: "/api/v1/job-kinds/lipsync-render/",
        lambda w: {"max_runtime_s": 900},
        writes(200),
    ),
]

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
PAGES = [
    ("home", lambda w: "/", expect(LOGIN, 200, 200, 200, 200, 200)),
    (
        "own department page",
        lambda w: "/departments/marketing/",
        expect(LOGIN, 200, 200, 404, 200, 200),
    ),
    (
        "other department page",
        lambda w: "/departments/training/",
        expect(LOGIN, 404, 404, 200, 200, 200),
    ),
    (
        "unknown department page",
        lambda w: "/departments/nope/",
        expect(LOGIN, 404, 404, 404, 404, 404),
    ),
    # A department's alert channels: its managers and IT change them, finance reads them
    # (POSTs: tests/billing/test_alert_channel_pages.py).
    (
        "own department's alerts page",
        lambda w: "/departments/marketing/alerts/",
        expect(LOGIN, 404, 200, 404, 200, 200),
    ),
    (
        "other department's alerts page",
        lambda w: "/departments/training/alerts/",
        expect(LOGIN, 404, 404, 200, 200, 200),
    ),
    (
        "unknown department's alerts page",
        lambda w: "/departments/nope/alerts/",
        expect(LOGIN, 404, 404, 404, 404, 404),
    ),
    (
        "alert channel change is a POST",
        lambda w: f"/departments/marketing/alerts/{_channel(w.marketing).pk}/",
        expect(LOGIN, 405, 405, 405, 405, 405),
    ),
    ("login page", lambda w: LOGIN, expect(200, "/", "/", "/", "/", "/")),
    ("api tokens page", lambda w: "/accounts/tokens/", expect(LOGIN, 200, 200, 200, 200, 200)),
    (
        "api token revoke is a POST",
        lambda w: f"/accounts/tokens/{_token(w.user('manager')).pk}/revoke/",
        expect(LOGIN, 405, 405, 405, 405, 405),
    ),
    ("api docs", lambda w: "/api/docs/", expect(LOGIN, 200, 200, 200, 200, 200)),
    ("health", lambda w: "/healthz", expect(200, 200, 200, 200, 200, 200)),
    # Prometheus' (no session); METRICS_TOKEN, when set, is checked in test_metrics_endpoint.
    ("metrics", lambda w: "/metrics", expect(200, 200, 200, 200, 200, 200)),
    (
        "admin index",
        lambda w: "/admin/",
        expect(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, 200),
    ),
    (
        "admin departments",
        lambda w: "/admin/departments/department/",
        expect(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, 200),
    ),
    (
        "admin department change",
        lambda w: f"/admin/departments/department/{w.marketing.pk}/change/",
        expect(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, 200),
    ),
    (
        "admin department add",
        lambda w: "/admin/departments/department/add/",
        expect(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 403, 200),
    ),
    # Job pages (POSTs and the finer rules: tests/jobs/test_job_pages_permissions.py).
    ("job list page", lambda w: "/jobs/", expect(LOGIN, 200, 200, 200, 200, 200)),
    ("job submit page", lambda w: "/jobs/submit/", expect(LOGIN, 200, 200, 200, 200, 200)),
    (
        "manager's job page",
        lambda w: f"/jobs/{w.manager_job.pk}/",
        expect(LOGIN, 404, 200, 404, 200, 200),
    ),
    (
        "member's job page",
        lambda w: f"/jobs/{w.member_job.pk}/",
        expect(LOGIN, 200, 200, 404, 200, 200),
    ),
    (
        "job cancel page is a POST",
        lambda w: f"/jobs/{w.member_job.pk}/cancel/",
        expect(LOGIN, 405, 405, 405, 405, 405),
    ),
]


def _cases(table):
    for row in table:
        name, expected = row[0], row[-1]
        for role in ROLES:
            yield pytest.param(role, *row[1:-1], expected[role], id=f"{name}-{role}")


@pytest.mark.parametrize(("role", "method", "url", "body", "status"), list(_cases(API)))
def test_api_answers_each_role_as_the_table_says(
    world, api_client, role, method, url, body, status
):
    client = client_as(api_client, world, role)
    response = getattr(client, method)(url(world), body(world) if body else None, format="json")
    assert response.status_code == status, response.content[:300]


@pytest.mark.parametrize(("role", "url", "expected"), list(_cases(PAGES)))
def test_pages_answer_each_role_as_the_table_says(world, client, role, url, expected):
    client = client_as(client, world, role)
    response = client.get(url(world))
    if isinstance(expected, str):
        assert response.status_code == 302
        assert response["Location"].split("?")[0] == expected
    else:
        assert response.status_code == expected


def _named_routes(patterns, namespace=""):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            if pattern.namespace == "admin":
                continue  # the admin's own routes: see test_admin_pages
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _named_routes(pattern.url_patterns, inner)
        elif pattern.name:
            yield namespace + pattern.name


def test_every_route_is_requested_by_a_table(world):
    """A new page or endpoint cannot land without its rows in the tables above."""
    from django.urls import get_resolver, resolve

    requested = {resolve(row[2](world).split("?")[0]).view_name for row in API}
    requested |= {resolve(row[1](world)).view_name for row in PAGES}
    # Requested by the tests below this one.
    requested |= {"api-token", "logout"}
    # Requested by tests/accounts/test_oidc_protocol.py (404 where no provider is set up).
    requested |= {"oidc_authentication_init", "oidc_authentication_callback"}
    # Billing's own tables (tests/billing/test_*_permissions.py), which check that they
    # request each of these.
    requested |= billing_api_table.REQUESTED_VIEW_NAMES | billing_page_table.REQUESTED_VIEW_NAMES
    missing = set(_named_routes(get_resolver().url_patterns)) - requested
    assert not missing, f"routes without permission rows: {sorted(missing)}"


@pytest.mark.parametrize("role", ROLES)
def test_token_endpoint_gives_a_token_only_for_the_right_password(world, api_client, role):
    user = world.user(role)
    username = user.username if user else "nobody"
    refused = api_client.post("/api/v1/auth/token/", {"username": username, "password": "wrong"})
    assert refused.status_code == 400
    if user is None:
        return
    granted = api_client.post(
        "/api/v1/auth/token/", {"username": username, "password": "correct horse battery staple"}
    )
    assert granted.status_code == 200
    token = granted.json()["token"]
    fresh = type(api_client)()
    fresh.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert fresh.get("/api/v1/departments/").status_code == 200


@pytest.mark.parametrize("role", ROLES[1:])
def test_logout_is_a_post_that_ends_the_session(world, client, role):
    client_as(client, world, role)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_an_address_no_api_endpoint_answers_is_a_json_404(world, client):
    client.force_login(world.user("finance"))
    response = client.get("/api/v1/statements/not-a-number/")
    assert response.status_code == 404
    assert response.json() == {
        "detail": "Not found: no API endpoint answers /api/v1/statements/not-a-number/."
    }
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
