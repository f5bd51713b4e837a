"""The admin is where IT and finance work: every page loads for them, IT can set up a
department in one form, finance can only look."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from rest_framework.authtoken.models import Token, TokenProxy

from accounts import tokens
from accounts.models import ApiToken, ProviderIdentity, RoleMapping
from billing import services as billing
from billing.models import (
    Adjustment,
    AlertChannel,
    BillingPeriod,
    Delivery,
    DepartmentMultiplier,
    RateCard,
    Statement,
    StatementSending,
)
from cluster.models import DriftCheck, DriftFinding
from departments.models import (
    Cluster,
    Department,
    GpuClass,
    Membership,
    Namespace,
    OffPeakWindow,
    Quota,
    ServiceLevel,
    WorkerPool,
)
from jobs.models import GenerationJob, JobKind, QuotaAlert
from metering.models import MeteringRun, MetricSource, UsageRecord
from tests.factories import (
    DepartmentMultiplierFactory,
    GpuClassFactory,
    RateCardFactory,
    UsageRecordFactory,
)

# model: (finance changelist/change/add, it-admin changelist/change/add)
PAGES = {
    Department: ((200, 200, 403), (200, 200, 200)),
    Namespace: ((200, 200, 403), (200, 200, 200)),
    Membership: ((200, 200, 403), (200, 200, 200)),
    GpuClass: ((200, 200, 403), (200, 200, 200)),
    Quota: ((200, 200, 403), (200, 200, 200)),
    ServiceLevel: ((200, 200, 403), (200, 200, 200)),
    OffPeakWindow: ((200, 200, 403), (200, 200, 200)),
    Cluster: ((200, 200, 403), (200, 200, 200)),
    WorkerPool: ((200, 200, 403), (200, 200, 200)),
    get_user_model(): ((403, 403, 403), (200, 200, 403)),
    Group: ((403, 403, 403), (200, 200, 403)),
    TokenProxy: ((403, 403, 403), (403, 403, 403)),
    MetricSource: ((200, 200, 403), (200, 200, 200)),
    # The ledger is written by metering runs only: nobody adds or edits it by hand.
    MeteringRun: ((200, 200, 403), (200, 200, 403)),
    UsageRecord: ((200, 200, 403), (200, 200, 403)),
    # The schedule of periodic tasks is IT's.
    PeriodicTask: ((403, 403, 403), (200, 200, 200)),
    IntervalSchedule: ((403, 403, 403), (200, 200, 200)),
    CrontabSchedule: ((403, 403, 403), (200, 200, 200)),
    SolarSchedule: ((403, 403, 403), (200, 200, 200)),
    ClockedSchedule: ((403, 403, 403), (200, 200, 200)),
    # IT defines what workers run; jobs and alerts are written by admission and workers.
    JobKind: ((200, 200, 403), (200, 200, 200)),
    GenerationJob: ((200, 200, 403), (200, 200, 403)),
    QuotaAlert: ((200, 200, 403), (200, 200, 403)),
    # Finance keeps prices and corrects finalized statements; statements and periods are
    # computed from the ledger, never added by hand. IT reads them.
    RateCard: ((200, 200, 200), (200, 200, 403)),
    DepartmentMultiplier: ((200, 200, 200), (200, 200, 403)),
    BillingPeriod: ((200, 200, 403), (200, 200, 403)),
    Statement: ((200, 200, 403), (200, 200, 403)),
    Adjustment: ((200, 200, 200), (200, 200, 403)),
    # IT configures every department's alert channels; deliveries and statement mails are
    # written by the senders (retried or re-sent through actions). Finance reads them.
    AlertChannel: ((200, 200, 403), (200, 200, 200)),
    Delivery: ((200, 200, 403), (200, 200, 403)),
    StatementSending: ((200, 200, 403), (200, 200, 403)),
    # Drift is IT's to read, and written by the checks alone.
    DriftCheck: ((403, 403, 403), (200, 200, 403)),
    DriftFinding: ((403, 403, 403), (200, 200, 403)),
    # Sign-in: IT maps the identity provider's groups (finance reads the mapping), reads who
    # signed in from where, and revokes tokens; a token is made by its owner alone.
    RoleMapping: ((200, 200, 403), (200, 200, 200)),
    ProviderIdentity: ((403, 403, 403), (200, 200, 403)),
    ApiToken: ((403, 403, 403), (200, 200, 403)),
}


def _one_of_each_metering_and_schedule_row(world) -> None:
    RoleMapping.objects.create(group="mkt-leads", role="manager", department=world.marketing)
    ProviderIdentity.objects.create(
        user=world.user("manager"),
        issuer="https://login.example",
        subject="mara",
        groups=["mkt-leads"],
        last_seen_at=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC),
    )
    tokens.api_token_create(user=world.user("manager"), name="nightly export")
    Cluster.objects.create(name="Prod EU", slug="prod-eu")
    WorkerPool.objects.create(namespace="gpu-workers")
    UsageRecordFactory(department=world.marketing, gpu_class=world.t4)
    QuotaAlert.objects.create(
        quota=world.marketing_quota, period="2026-11-25", threshold_pct=80, use=40, limit=50
    )
    at = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    DriftCheck.objects.create(
        cluster="prod-eu", at=at, started_at=at, finished_at=at, status="ok", departments=[]
    )
    DriftFinding.objects.create(
        cluster="prod-eu",
        department=world.marketing,
        kind="Namespace",
        name="dept-marketing",
        wanted="present",
        found="absent",
        first_seen=at,
        last_seen=at,
    )
    CrontabSchedule.objects.create(minute="0", hour="6")
    SolarSchedule.objects.create(event="sunrise", latitude=52.5, longitude=13.4)
    ClockedSchedule.objects.create(clocked_time=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC))
    RateCardFactory(gpu_class=world.t4)
    DepartmentMultiplierFactory(department=world.training)
    billing.period_refresh(month=dt.date(2026, 3, 1))
    march = Statement.objects.get(period__month=dt.date(2026, 3, 1), department=world.marketing)
    billing.adjustment_create(
        original=billing.statement_finalize(statement=march, user=None),
        amount=Decimal("-5.00"),
        reason="Credit for an outage",
        user=world.user("finance"),
    )
    channel = AlertChannel.objects.create(
        department=world.marketing, name="ops", kind="email", emails=["ops@example.com"]
    )
    Delivery.objects.create(channel=channel, event_key="quota:1", event_type="quota", subject="s")
    StatementSending.objects.create(kind="statement", statement=march, period=march.period)


def test_every_admin_model_is_in_the_table():
    assert set(admin.site._registry) == set(PAGES)


@pytest.mark.parametrize("role", ["finance", "it_admin"])
@pytest.mark.parametrize("model", list(PAGES), ids=lambda m: m._meta.label)
def test_admin_pages_load_for_finance_and_it_admin(world, client, role, model):
    Token.objects.get_or_create(user=world.user("finance"))
    _one_of_each_metering_and_schedule_row(world)
    client.force_login(world.user(role))
    instance = model.objects.order_by("pk").first()
    info = f"/admin/{model._meta.app_label}/{model._meta.model_name}"
    statuses = (
        client.get(f"{info}/").status_code,
        client.get(f"{info}/{instance.pk}/change/").status_code,
        client.get(f"{info}/add/").status_code,
    )
    assert statuses == PAGES[model][0 if role == "finance" else 1]


def _department_form(world, **overrides):
    data = {
        "name": "Research",
        "slug": "research",
        "cost_centre": "CC-7000",
        "active": "on",
        "namespaces-TOTAL_FORMS": "1",
        "namespaces-INITIAL_FORMS": "0",
        "namespaces-0-name": "dept-research",
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "0",
        "memberships-0-user": str(world.user("member").pk),
        "memberships-0-role": "manager",
        "quotas-TOTAL_FORMS": "1",
        "quotas-INITIAL_FORMS": "0",
        "quotas-0-kind": "concurrent_jobs",
        "quotas-0-limit": "3",
        "quotas-0-enforcement": "hard_queue",
        "quotas-0-alert_thresholds_pct": "80,100",
        "service_levels-TOTAL_FORMS": "1",
        "service_levels-INITIAL_FORMS": "0",
        "service_levels-0-tier": "interactive",
        "service_levels-0-priority": "5",
        "service_levels-0-latency_target_ms": "3000",
        "service_levels-0-max_queue_wait_s": "300",
        "service_levels-0-gpu_classes": [str(world.a100.pk), str(world.t4.pk)],
    }
    return {**data, **overrides}


def test_it_admin_sets_up_a_department_in_one_admin_form(world, client):
    client.force_login(world.user("it_admin"))
    response = client.post("/admin/departments/department/add/", _department_form(world))
    assert response.status_code == 302, response.context and response.context["errors"]

    research = Department.objects.get(slug="research")
    assert list(research.namespaces.values_list("name", flat=True)) == ["dept-research"]
    assert list(research.memberships.values_list("user__username", "role")) == [("mila", "manager")]
    quota = research.quotas.get()
    assert (quota.kind, quota.limit, quota.alert_thresholds_pct) == (
        "concurrent_jobs",
        3,
        [80, 100],
    )
    sla = research.service_levels.get()
    assert sorted(sla.gpu_classes.values_list("slug", flat=True)) == ["a100", "t4"]


def test_admin_refuses_a_namespace_another_department_owns(world, client):
    client.force_login(world.user("it_admin"))
    response = client.post(
        "/admin/departments/department/add/",
        _department_form(world, **{"namespaces-0-name": "dept-marketing"}),
    )
    assert response.status_code == 200
    assert "dept-marketing already belongs to Marketing." in response.content.decode()
    assert not Department.objects.filter(slug="research").exists()


def test_finance_cannot_change_anything_in_the_admin(world, client):
    client.force_login(world.user("finance"))
    response = client.post(
        f"/admin/departments/quota/{world.marketing_quota.pk}/change/",
        {
            "department": world.marketing.pk,
            "kind": "jobs_day",
            "limit": "999",
            "enforcement": "soft",
        },
    )
    assert response.status_code == 403
    world.marketing_quota.refresh_from_db()
    assert world.marketing_quota.limit == 50


def test_admin_finds_a_department_by_its_namespace(world, client):
    client.force_login(world.user("finance"))
    response = client.get("/admin/departments/department/?q=dept-training")
    assert [d.slug for d in response.context["cl"].result_list] == ["training"]


def test_deactivate_action_goes_through_the_service(world, client):
    client.force_login(world.user("it_admin"))
    response = client.post(
        "/admin/departments/department/",
        {"action": "deactivate", "_selected_action": [world.marketing.pk, world.training.pk]},
        follow=True,
    )
    assert "2 department(s) set inactive." in response.content.decode()
    assert not Department.objects.filter(active=True).exists()


def test_admin_shows_the_service_levels_that_keep_a_gpu_class(world, client):
    client.force_login(world.user("it_admin"))
    page = client.get(f"/admin/departments/gpuclass/{world.a100.pk}/delete/").content.decode()
    assert "Service level: Training: Interactive" in page
    client.post(f"/admin/departments/gpuclass/{world.a100.pk}/delete/", {"post": "yes"})
    assert GpuClass.objects.filter(pk=world.a100.pk).exists()


def test_admin_deletes_a_gpu_class_nothing_uses(world, client):
    unused = GpuClassFactory(slug="v100")
    client.force_login(world.user("it_admin"))
    response = client.post(f"/admin/departments/gpuclass/{unused.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not GpuClass.objects.filter(pk=unused.pk).exists()


def test_admin_refuses_two_quota_rows_of_the_same_scope_with_a_message(world, client):
    client.force_login(world.user("it_admin"))
    second_row = {
        "quotas-TOTAL_FORMS": "2",
        "quotas-1-kind": "concurrent_jobs",
        "quotas-1-limit": "5",
        "quotas-1-enforcement": "soft",
        "quotas-1-alert_thresholds_pct": "",
    }
    response = client.post(
        "/admin/departments/department/add/", _department_form(world, **second_row)
    )
    assert response.status_code == 200
    assert "Two quotas of the same kind" in response.content.decode()
    assert not Department.objects.filter(slug="research").exists()


def test_admin_explains_a_gpu_class_without_gpus(world, client):
    client.force_login(world.user("it_admin"))
    response = client.post(
        "/admin/departments/gpuclass/add/",
        {"name": "L4", "slug": "l4", "model_regex": ".*L4.*", "capacity_gpus": "0"},
    )
    assert response.status_code == 200
    assert "A GPU class holds at least one GPU." in response.content.decode()
