"""Every change to departments, their rules, job kinds, metric sources, prices and
statements is kept with who made it, and finance and IT read it in the admin. The history
is a record: nothing is restored from it, and a metric source's secret never enters it."""

import datetime as dt
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser

import pytest
from rest_framework.authtoken.models import Token

from billing import services as billing
from billing.models import (
    BillingPeriod,
    DepartmentMultiplier,
    RateCard,
    Statement,
    StatementStatus,
)
from departments.models import (
    Department,
    GpuClass,
    Membership,
    Namespace,
    OffPeakWindow,
    Quota,
    ServiceLevel,
)
from jobs.models import JobKind
from metering.models import MetricSource
from tests.conftest import client_as
from tests.factories import DepartmentMultiplierFactory, MetricSourceFactory, RateCardFactory

MARCH = dt.date(2026, 3, 1)


class _FormFields(HTMLParser):
    """What a browser submits from the form with the given id: every named input, select
    and textarea, as the page filled them in."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside, self.data = form_id, False, {}
        self._select, self._textarea, self._options = None, None, []

    def _add(self, name: str, value: str) -> None:
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        if not self.inside or (tag != "option" and not attrs.get("name")):
            return
        if tag == "input":
            kind = attrs.get("type", "text")
            if kind in ("submit", "button", "reset", "file", "image"):
                return
            if kind in ("checkbox", "radio") and "checked" not in attrs:
                return
            self._add(attrs["name"], attrs.get("value", "on" if kind == "checkbox" else ""))
        elif tag == "select":
            self._select, self._options = attrs, []
        elif tag == "option" and self._select is not None:
            self._options.append((attrs.get("value", ""), "selected" in attrs))
        elif tag == "textarea":
            self._textarea = attrs["name"]
            self._add(self._textarea, "")

    def handle_data(self, data):
        if self._textarea is not None:
            self.data[self._textarea][-1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select" and self._select is not None:
            chosen = [value for value, selected in self._options if selected]
            if not chosen and "multiple" not in self._select and self._options:
                chosen = [self._options[0][0]]
            for value in chosen:
                self._add(self._select["name"], value)
            self._select = None


def _admin_url(obj, view: str = "change") -> str:
    return f"/admin/{obj._meta.app_label}/{obj._meta.model_name}/{obj.pk}/{view}/"


def _change_in_admin(client, obj, **changes) -> None:
    """Submit ``obj``'s admin change form as it stands, with ``changes`` typed in."""
    page = client.get(_admin_url(obj))
    assert page.status_code == 200
    form = _FormFields(f"{obj._meta.model_name}_form")
    form.feed(page.content.decode())
    assert form.data, "the change form was not found"
    data = {**form.data, **changes}
    response = client.post(_admin_url(obj), data)
    assert response.status_code == 302, response.context and response.context["errors"]


def _field_changes(record) -> dict:
    """What ``record`` changed compared with the version before it: {field: (old, new)}."""
    previous = record.prev_record
    assert previous is not None, "no earlier version to compare with"
    return {c.field: (c.old, c.new) for c in record.diff_against(previous).changes}


def _same(shown, typed: str) -> bool:
    """Whether the page shows what was typed in (75.000 is the 75 typed)."""
    try:
        return Decimal(str(shown)) == Decimal(typed)
    except InvalidOperation:
        return str(shown) == typed


def _department(world):
    return world.marketing


def _namespace(world):
    return Namespace.objects.get(name="dept-marketing")


def _membership(world):
    return Membership.objects.get(user=world.user("member"))


def _job_kind(world):
    return world.lipsync


def _metric_source(world):
    # Not a built-in source: those are made by a migration, before history began.
    return MetricSourceFactory(name="dcgm-eu", label_filters={"cluster": "eu"})


def _rate_card(world):
    return RateCardFactory(gpu_class=world.t4)


def _multiplier(world):
    return DepartmentMultiplierFactory(department=world.training)


def _billing_period(world):
    return billing.period_get_or_create(month=MARCH)


# model: (who changes it, the object, the form field changed, the value typed in, the value
# stored in the history)
CHANGES = {
    Department: ("it_admin", _department, "cost_centre", "CC-4242", "CC-4242"),
    Namespace: ("it_admin", _namespace, "tier", "batch", "batch"),
    Membership: ("it_admin", _membership, "role", "manager", "manager"),
    GpuClass: ("it_admin", lambda world: world.t4, "capacity_gpus", "20", 20),
    Quota: ("it_admin", lambda world: world.marketing_quota, "limit", "75", 75),
    ServiceLevel: ("it_admin", lambda world: world.marketing_sla, "priority", "7", 7),
    OffPeakWindow: (
        "it_admin",
        lambda world: world.off_peak,
        "price_multiplier",
        "0.5",
        Decimal("0.5"),
    ),
    JobKind: ("it_admin", _job_kind, "max_runtime_s", "900", 900),
    MetricSource: ("it_admin", _metric_source, "repull_hours", "6", 6),
    RateCard: ("finance", _rate_card, "note", "Negotiated with the vendor", None),
    DepartmentMultiplier: ("finance", _multiplier, "reason", "Start-up discount", None),
    BillingPeriod: ("finance", _billing_period, "idle_policy", "shared", None),
}


@pytest.mark.parametrize("model", list(CHANGES), ids=lambda m: m._meta.label)
def test_an_admin_change_is_kept_with_who_made_it_and_what_changed(world, client, model):
    role, get_object, field, typed, stored = CHANGES[model]
    obj = get_object(world)
    before = getattr(obj, field)
    client.force_login(world.user(role))

    _change_in_admin(client, obj, **{field: typed})

    record = obj.history.latest()
    assert record.history_type == "~"
    assert record.history_user == world.user(role)
    old, new = _field_changes(record)[field]
    assert old == before
    assert new == (typed if stored is None else stored)


@pytest.mark.parametrize("reader", ["finance", "it_admin"])
@pytest.mark.parametrize("model", list(CHANGES), ids=lambda m: m._meta.label)
def test_finance_and_it_admin_read_the_change_on_the_history_page(world, client, model, reader):
    role, get_object, field, typed, _ = CHANGES[model]
    obj = get_object(world)
    _change_in_admin(client_as(client, world, role), obj, **{field: typed})
    client.force_login(world.user(reader))

    page = client.get(_admin_url(obj, "history"))

    assert page.status_code == 200
    latest = page.context["page_obj"][0]
    label = str(model._meta.get_field(field).verbose_name)
    shown = {c["field"].lower(): c["new"] for c in latest.history_delta_changes}
    assert _same(shown[label.lower()], typed)
    assert f">{world.user(role).username}</a>" in page.content.decode()
    assert "to revert to a previous version" not in page.content.decode()
    version = client.get(f"{_admin_url(obj, 'history')}{latest.history_id}/")
    assert version.status_code == 200
    assert 'value="Revert"' not in version.content.decode()


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("finance", 200),
        ("it_admin", 200),
        ("manager", 302),
        ("other_manager", 302),
        ("member", 302),
        ("anonymous", 302),
    ],
)
def test_only_the_admin_users_read_a_history_page(world, client, role, status):
    response = client_as(client, world, role).get(_admin_url(world.marketing_quota, "history"))
    assert response.status_code == status
    if status == 302:
        assert response["Location"].startswith("/admin/login/")


def test_a_service_level_keeps_the_gpu_classes_it_allowed(world, client):
    sla = world.marketing_sla
    client.force_login(world.user("it_admin"))

    _change_in_admin(client, sla, gpu_classes=[str(world.a100.pk), str(world.t4.pk)])

    after, before = sla.history.order_by("-history_date", "-history_id")[:2]
    assert sorted(before.gpu_classes.values_list("gpuclass__slug", flat=True)) == ["t4"]
    assert sorted(after.gpu_classes.values_list("gpuclass__slug", flat=True)) == ["a100", "t4"]
    assert after.history_user == world.user("it_admin")
    page = client.get(_admin_url(sla, "history"))
    latest = page.context["page_obj"][0]
    shown = {c["field"]: (c["old"], c["new"]) for c in latest.history_delta_changes}
    assert shown["Allowed GPU classes"] == ("[T4]", "[A100, T4]")


def test_an_api_change_is_kept_with_the_token_user(world, api_client):
    token, _ = Token.objects.get_or_create(user=world.user("it_admin"))
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    response = api_client.patch(
        f"/api/v1/quotas/{world.marketing_quota.pk}/", {"limit": "60"}, format="json"
    )

    assert response.status_code == 200, response.content
    record = world.marketing_quota.history.latest()
    assert record.history_user == world.user("it_admin")
    assert _field_changes(record)["limit"] == (50, 60)


def test_a_metric_sources_authorization_header_never_enters_the_history(world, client):
    source = _metric_source(world)
    client.force_login(world.user("it_admin"))

    _change_in_admin(client, source, auth_header="Bearer s3cret-token", repull_hours="5")

    source.refresh_from_db()
    assert source.auth_header == "Bearer s3cret-token"
    history_model = source.history.model
    assert "auth_header" not in {f.name for f in history_model._meta.get_fields()}
    record = source.history.latest()
    assert record.history_user == world.user("it_admin")
    assert "auth_header" not in _field_changes(record)
    for reader in ("finance", "it_admin"):
        client.force_login(world.user(reader))
        for url in (
            _admin_url(source, "history"),
            f"{_admin_url(source, 'history')}{record.history_id}/",
        ):
            page = client.get(url)
            assert page.status_code == 200
            assert "s3cret" not in page.content.decode()


@pytest.fixture
def march_statement(world) -> Statement:
    """Marketing's draft statement of March 2026, a month that has ended."""
    billing.period_refresh(month=MARCH)
    return Statement.objects.get(period__month=MARCH, department=world.marketing)


def _assert_finalized_by(statement: Statement, user) -> None:
    record = statement.history.latest()
    assert (record.status, record.history_user) == (StatementStatus.FINALIZED, user)
    changes = _field_changes(record)
    assert changes["status"] == (StatementStatus.DRAFT, StatementStatus.FINALIZED)
    assert changes["finalized_by"] == (None, user.pk)


def test_finalizing_a_statement_in_the_admin_is_kept_with_who_finalized_it(
    world, client, march_statement
):
    client.force_login(world.user("finance"))

    response = client.post(
        "/admin/billing/statement/",
        {"action": "finalize", "_selected_action": [march_statement.pk]},
        follow=True,
    )

    assert "1 statement(s) finalized." in response.content.decode()
    _assert_finalized_by(march_statement, world.user("finance"))
    for reader in ("finance", "it_admin"):
        client.force_login(world.user(reader))
        page = client.get(_admin_url(march_statement, "history"))
        assert page.status_code == 200
        latest = page.context["page_obj"][0]
        shown = {c["field"]: (c["old"], c["new"]) for c in latest.history_delta_changes}
        assert shown["Status"] == ("draft", "finalized")
        assert shown["Finalized by"] == ("None", "fiona")


def test_finalizing_a_statement_through_the_api_is_kept_with_who_finalized_it(
    world, api_client, march_statement
):
    response = client_as(api_client, world, "finance").post(
        f"/api/v1/statements/{march_statement.pk}/finalize/"
    )

    assert response.status_code == 200, response.content
    _assert_finalized_by(march_statement, world.user("finance"))


def test_a_finalized_statement_cannot_be_reverted_from_its_history(world, client, march_statement):
    billing.statement_finalize(statement=march_statement, user=world.user("finance"))
    draft = march_statement.history.earliest()
    assert draft.status == StatementStatus.DRAFT
    url = f"{_admin_url(march_statement, 'history')}{draft.history_id}/"

    for role in ("finance", "it_admin"):
        client.force_login(world.user(role))
        page = client.get(url)
        assert page.status_code == 200
        assert 'value="Revert"' not in page.content.decode()
        assert "Revert" not in page.content.decode()
        assert client.post(url, {"status": "draft"}).status_code == 403

    stored = Statement.objects.get(pk=march_statement.pk)
    assert (stored.status, stored.finalized_by) == (
        StatementStatus.FINALIZED,
        world.user("finance"),
    )
    assert march_statement.history.count() == 2


def test_no_change_is_restored_from_the_history_even_by_who_may_change_it(world, client):
    quota = world.marketing_quota
    client.force_login(world.user("it_admin"))
    _change_in_admin(client, quota, limit="75")
    first = quota.history.earliest()
    url = f"{_admin_url(quota, 'history')}{first.history_id}/"

    page = client.get(url)
    assert page.status_code == 200
    assert "Revert" not in page.content.decode()
    shown = _FormFields("historicalquota_form")
    shown.feed(page.content.decode())
    assert "limit" not in shown.data  # shown read-only, as it was: 50
    assert page.context["adminform"].form.instance.limit == 50
    forged = {
        **shown.data,
        "department": str(world.marketing.pk),
        "kind": quota.kind,
        "limit": "50",
        "enforcement": quota.enforcement,
    }
    response = client.post(url, forged)

    assert response.status_code == 403
    quota.refresh_from_db()
    assert quota.limit == 75
    assert quota.history.count() == 2


def test_a_months_recomputed_figures_are_not_versions_but_its_idle_policy_is(world, client):
    period = billing.period_get_or_create(month=MARCH)
    billing.period_refresh(month=MARCH, force=True)
    billing.period_refresh(month=MARCH, force=True)
    assert [r.history_type for r in period.history.all()] == ["+"]

    _change_in_admin(client_as(client, world, "finance"), period, idle_policy="shared")
    billing.period_refresh(month=MARCH, force=True)

    assert [(r.history_type, r.idle_policy) for r in period.history.order_by("history_id")] == [
        ("+", "absorbed"),
        ("~", "shared"),
    ]
    assert period.history.latest().history_user == world.user("finance")
