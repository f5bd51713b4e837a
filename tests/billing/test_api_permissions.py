"""Who gets what from the billing API: every billing endpoint requested as each role.

``member`` and ``manager`` belong to marketing; ``other_manager`` manages training. Reads of
another department's statement or adjustment answer 404; writes are refused (403) before
any lookup; a method an endpoint does not offer (changing or deleting a statement or an
adjustment) answers 405 to anyone signed in. A member reads empty lists and an empty
chargeback report, as with usage: members see their own jobs, not the department's money.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest

from billing import services
from billing.models import Adjustment
from tests import factories
from tests.billing.test_api_statements import March, bill_march
from tests.conftest import ROLES, client_as


def expect(anonymous, member, manager, other_manager, finance, it_admin):
    return dict(
        zip(ROLES, (anonymous, member, manager, other_manager, finance, it_admin), strict=True)
    )


READ_ALL = expect(401, 200, 200, 200, 200, 200)
READ_MARKETING = expect(401, 404, 200, 404, 200, 200)
READ_TRAINING = expect(401, 404, 404, 200, 200, 200)
FINANCE_WRITES = expect(401, 403, 403, 403, None, 403)  # None: the finance answer
NOT_OFFERED = expect(401, 405, 405, 405, 405, 405)


def finance(status):
    return {**FINANCE_WRITES, "finance": status}


@dataclass
class Billed:
    """March 2026 priced; marketing's statement finalized and corrected once, training's a
    draft; a rate card that priced no finalized month."""

    march: March
    adjustment: Adjustment
    spare_card: object

    @property
    def marketing(self) -> int:
        return self.march.marketing.pk

    @property
    def training(self) -> int:
        return self.march.training.pk


@pytest.fixture
def billed(world, ledger) -> Billed:
    march = bill_march(world, ledger)
    services.statement_finalize(statement=march.marketing, user=world.user("finance"))
    adjustment = services.adjustment_create(
        original=march.marketing, amount=Decimal("-1.00"), reason="Outage", user=None
    )
    # From May: no finalized month is priced with it (its class's idle capacity included).
    spare = factories.RateCardFactory(
        gpu_class=factories.GpuClassFactory(slug="h100"),
        valid_from=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
    )
    return Billed(march=march, adjustment=adjustment, spare_card=spare)


S = "/api/v1/statements/"
A = "/api/v1/adjustments/"
R = "/api/v1/rate-cards/"
REPORT = "/api/v1/reports/chargeback/?period=2026-03"
POOLS = "/api/v1/reports/pools/?period=2026-03"
FOCUS = "/api/v1/exports/focus/?period=2026-03"


def _line_jobs(statement_pk: int) -> str:
    from billing.models import StatementLine

    line = StatementLine.objects.filter(statement=statement_pk).order_by("pk").first()
    return f"{S}{statement_pk}/lines/{line.pk}/jobs/"


# (name, method, url(billed), body(billed) or None, expected statuses)
API = [
    ("rate card list", "get", lambda b: R, None, READ_ALL),
    ("rate card", "get", lambda b: f"{R}{b.spare_card.pk}/", None, READ_ALL),
    (
        "rate card create",
        "post",
        lambda b: R,
        lambda b: {
            "gpu_class": "t4",
            "tier": "realtime",
            "price_per_gpu_hour": "4",
            "valid_from": "2026-01-01T00:00:00Z",
        },
        finance(201),
    ),
    (
        "rate card update",
        "patch",
        lambda b: f"{R}{b.spare_card.pk}/",
        lambda b: {"price_per_gpu_hour": "3.10"},
        finance(200),
    ),
    ("rate card delete", "delete", lambda b: f"{R}{b.spare_card.pk}/", None, finance(204)),
    ("statement list", "get", lambda b: S, None, READ_ALL),
    ("statement list csv", "get", lambda b: f"{S}?format=csv", None, READ_ALL),
    ("statement list xlsx", "get", lambda b: f"{S}?format=xlsx", None, READ_ALL),
    ("own statement", "get", lambda b: f"{S}{b.marketing}/", None, READ_MARKETING),
    ("own statement csv", "get", lambda b: f"{S}{b.marketing}/?format=csv", None, READ_MARKETING),
    ("own statement xlsx", "get", lambda b: f"{S}{b.marketing}/?format=xlsx", None, READ_MARKETING),
    ("own statement pdf", "get", lambda b: f"{S}{b.marketing}/pdf/", None, READ_MARKETING),
    (
        "own statement ?format=pdf",
        "get",
        lambda b: f"{S}{b.marketing}/?format=pdf",
        None,
        READ_MARKETING,
    ),
    ("other statement", "get", lambda b: f"{S}{b.training}/", None, READ_TRAINING),
    ("other statement pdf", "get", lambda b: f"{S}{b.training}/pdf/", None, READ_TRAINING),
    ("unknown statement", "get", lambda b: f"{S}999999/", None, expect(401, *[404] * 5)),
    ("statement finalize", "post", lambda b: f"{S}{b.training}/finalize/", None, finance(200)),
    (
        "finalized statement finalize again",
        "post",
        lambda b: f"{S}{b.marketing}/finalize/",
        None,
        finance(409),
    ),
    ("statement create", "post", lambda b: S, lambda b: {"department": "marketing"}, NOT_OFFERED),
    (
        "statement replace",
        "put",
        lambda b: f"{S}{b.marketing}/",
        lambda b: {"total": "0"},
        NOT_OFFERED,
    ),
    (
        "statement update",
        "patch",
        lambda b: f"{S}{b.training}/",
        lambda b: {"total": "0"},
        NOT_OFFERED,
    ),
    ("statement delete", "delete", lambda b: f"{S}{b.marketing}/", None, NOT_OFFERED),
    ("adjustment list", "get", lambda b: A, None, READ_ALL),
    ("adjustment list csv", "get", lambda b: f"{A}?format=csv", None, READ_ALL),
    ("own adjustment", "get", lambda b: f"{A}{b.adjustment.pk}/", None, READ_MARKETING),
    (
        "adjustment create",
        "post",
        lambda b: A,
        lambda b: {"original": b.marketing, "amount": "2.00", "reason": "Missed hours"},
        finance(201),
    ),
    (
        "adjustment update",
        "patch",
        lambda b: f"{A}{b.adjustment.pk}/",
        lambda b: {"amount": "0"},
        NOT_OFFERED,
    ),
    ("adjustment delete", "delete", lambda b: f"{A}{b.adjustment.pk}/", None, NOT_OFFERED),
    ("chargeback report", "get", lambda b: REPORT, None, READ_ALL),
    ("chargeback report csv", "get", lambda b: f"{REPORT}&format=csv", None, READ_ALL),
    ("chargeback report xlsx", "get", lambda b: f"{REPORT}&format=xlsx", None, READ_ALL),
    (
        "chargeback report is read-only",
        "post",
        lambda b: REPORT,
        None,
        expect(401, 403, 403, 403, 403, 403),
    ),
    ("usage xlsx", "get", lambda b: "/api/v1/usage/?format=xlsx", None, READ_ALL),
    ("own line's jobs", "get", lambda b: _line_jobs(b.marketing), None, READ_MARKETING),
    (
        "own line's jobs csv",
        "get",
        lambda b: f"{_line_jobs(b.marketing)}?format=csv",
        None,
        READ_MARKETING,
    ),
    ("other line's jobs", "get", lambda b: _line_jobs(b.training), None, READ_TRAINING),
    # A manager reads an empty list: the pools are the fleet's, not a department's.
    ("pool report", "get", lambda b: POOLS, None, READ_ALL),
    ("pool report csv", "get", lambda b: f"{POOLS}&format=csv", None, READ_ALL),
    (
        "pool report is read-only",
        "post",
        lambda b: POOLS,
        None,
        expect(401, 403, 403, 403, 403, 403),
    ),
    # Every department's charges: finance and IT only.
    ("focus export", "get", lambda b: FOCUS, None, expect(401, 403, 403, 403, 200, 200)),
    ("focus export is read-only", "post", lambda b: FOCUS, None, expect(401, *[403] * 3, 405, 405)),
]

# The routes this table requests (for tests/portal/test_permission_table.py's check that
# every route has rows).
REQUESTED_VIEW_NAMES = frozenset(
    {
        "rate-cards-list",
        "rate-cards-detail",
        "statements-list",
        "statements-detail",
        "statements-pdf",
        "statements-finalize",
        "statements-line-jobs",
        "adjustments-list",
        "adjustments-detail",
        "chargeback-report",
        "pool-report",
        "focus-export",
    }
)


def _cases():
    for name, method, url, body, expected in API:
        for role in ROLES:
            yield pytest.param(role, method, url, body, expected[role], id=f"{name}-{role}")


@pytest.mark.parametrize(("role", "method", "url", "body", "status"), list(_cases()))
def test_billing_api_answers_each_role_as_the_table_says(
    world, billed, api_client, role, method, url, body, status
):
    client = client_as(api_client, world, role)
    response = getattr(client, method)(url(billed), body(billed) if body else None, format="json")
    assert response.status_code == status, response.content[:300]


def test_the_table_requests_every_billing_route(world, billed):
    from django.urls import get_resolver, resolve

    requested = {resolve(row[2](billed).split("?")[0]).view_name for row in API}
    billing_routes = {
        name
        for name in get_resolver().reverse_dict
        if isinstance(name, str)
        and name.startswith(
            (
                "rate-cards-",
                "statements-",
                "adjustments-",
                "chargeback-",
                "pool-report",
                "focus-export",
            )
        )
    }
    assert billing_routes == REQUESTED_VIEW_NAMES
    assert requested >= billing_routes
