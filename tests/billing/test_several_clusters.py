"""A fleet of two clusters: a billing source per cluster, the ledger keeps each row's
cluster, a namespace is claimed in one cluster or in all, and two clusters with a namespace
of the same name bill two departments correctly. The bill, the usage API and the dashboard
split by cluster."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from billing import services
from billing.models import LineKind, Statement, StatementLine
from departments import services as department_services
from departments.models import Namespace
from metering.models import MetricSource
from metering.services import namespace_owners
from tests import factories
from tests.billing.conftest import hour
from tests.conftest import client_as

pytestmark = pytest.mark.django_db

MARCH = dt.date(2026, 3, 1)


@pytest.fixture
def two_clusters(world):
    eu = factories.ClusterFactory(slug="prod-eu", name="Prod EU")
    us = factories.ClusterFactory(slug="prod-us", name="Prod US")
    MetricSource.objects.filter(is_billing=True).update(is_billing=False)
    sources = {
        cluster.slug: factories.MetricSourceFactory(
            name=f"allocation-{cluster.slug}", cluster=cluster, is_billing=True
        )
        for cluster in (eu, us)
    }
    # "ml" is marketing's in prod-eu and training's in prod-us.
    department_services.department_set_namespaces(
        department=world.marketing, namespaces=["dept-marketing", "prod-eu/ml"]
    )
    department_services.department_set_namespaces(
        department=world.training, namespaces=["dept-training", "prod-us/ml"]
    )
    factories.RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2.00"))
    return eu, us, sources


def _row(source, namespace, gpu_hours, at, world):
    owner = namespace_owners(source.cluster_id)(namespace)
    return factories.UsageRecordFactory(
        source=source,
        cluster=source.cluster,
        namespace=namespace,
        department_id=owner,
        gpu_class=world.a100,
        gpu_model="NVIDIA-A100",
        hour_start=at,
        gpu_hours=Decimal(gpu_hours),
    )


def test_a_namespace_of_the_same_name_in_two_clusters_bills_two_departments(world, two_clusters):
    _, _, sources = two_clusters
    _row(sources["prod-eu"], "ml", "3", hour(2, 10), world)
    _row(sources["prod-us"], "ml", "5", hour(2, 10), world)
    _row(sources["prod-us"], "dept-marketing", "1", hour(2, 11), world)  # in every cluster
    period = services.period_refresh(month=MARCH)

    totals = dict(Statement.objects.filter(period=period).values_list("department__slug", "total"))
    assert totals == {"marketing": Decimal("8.00"), "training": Decimal("10.00")}
    lines = {
        (line.department.slug, line.cluster.slug): (line.gpu_hours, line.description)
        for line in StatementLine.objects.filter(period=period, kind=LineKind.USAGE)
    }
    assert lines[("marketing", "prod-eu")] == (
        Decimal("3.00"),
        "3.00 GPU-hours of A100 in prod-eu × 2.00 EUR, namespace workloads: prod-eu/ml",
    )
    assert lines[("training", "prod-us")][0] == Decimal("5.00")
    assert lines[("marketing", "prod-us")][0] == Decimal("1.00")


def test_the_usage_api_splits_and_filters_by_cluster(world, two_clusters, api_client):
    _, _, sources = two_clusters
    _row(sources["prod-eu"], "ml", "3", hour(2, 10), world)
    _row(sources["prod-us"], "ml", "5", hour(2, 10), world)
    client = client_as(api_client, world, "finance")
    query = "start=2026-03-01&end=2026-04-01&granularity=month"
    rows = client.get(f"/api/v1/usage/?{query}").json()["results"]
    assert sorted((r["cluster"], r["source"], r["department"], r["quantity"]) for r in rows) == [
        ("prod-eu", "allocation-prod-eu", "marketing", "3.00"),
        ("prod-us", "allocation-prod-us", "training", "5.00"),
    ]
    only_us = client.get(f"/api/v1/usage/?{query}&cluster=prod-us").json()["results"]
    assert [r["department"] for r in only_us] == ["training"]
    unknown = client.get(f"/api/v1/usage/?{query}&cluster=mars")
    assert unknown.status_code == 400 and "No cluster “mars”" in unknown.json()["cluster"][0]


def test_the_chargeback_report_and_dashboard_split_by_cluster(
    world, two_clusters, api_client, client
):
    _, _, sources = two_clusters
    _row(sources["prod-eu"], "ml", "3", hour(2, 10), world)
    _row(sources["prod-us"], "dept-marketing", "1", hour(2, 10), world)
    report = (
        client_as(api_client, world, "finance")
        .get("/api/v1/reports/chargeback/?period=2026-03")
        .json()
    )
    assert report["clusters"] == ["prod-eu", "prod-us"]
    (marketing,) = [row for row in report["rows"] if row["department"] == "marketing"]
    assert marketing["spend_by_cluster"] == {"prod-eu": "6.00", "prod-us": "2.00"}
    page = client_as(client, world, "finance").get("/billing/?period=2026-03").content.decode()
    assert "Usage by cluster" in page and "prod-us" in page


def test_one_billing_source_per_cluster(two_clusters):
    eu, _, _ = two_clusters
    with pytest.raises(IntegrityError):
        factories.MetricSourceFactory(name="another-eu", cluster=eu, is_billing=True)


@pytest.mark.parametrize(
    ("claim", "error"),
    [
        ("ml", "prod-eu/ml already belongs to Marketing."),  # every cluster overlaps prod-eu
        ("prod-eu/ml", "prod-eu/ml already belongs to Marketing."),
        ("mars/ml", "mars/ml: no cluster “mars”"),
        ("prod-eu/Not_A_Label", "prod-eu/Not_A_Label: A namespace name has lower-case"),
    ],
)
def test_a_claim_that_overlaps_another_departments_is_refused(world, two_clusters, claim, error):
    research = factories.DepartmentFactory(slug="research")
    with pytest.raises(ValidationError) as refused:
        department_services.department_set_namespaces(department=research, namespaces=[claim])
    assert any(message.startswith(error) for message in refused.value.message_dict["namespaces"])
    assert not research.namespaces.exists()


def test_a_namespace_claimed_in_every_cluster_cannot_also_be_claimed_in_one(world, two_clusters):
    research = factories.DepartmentFactory(slug="research")
    with pytest.raises(ValidationError, match="dept-marketing already belongs to Marketing"):
        department_services.department_set_namespaces(
            department=research, namespaces=["prod-us/dept-marketing"]
        )
    claim = Namespace(name="dept-marketing", cluster=two_clusters[1], department=research)
    with pytest.raises(ValidationError, match="already belongs to Marketing"):
        claim.full_clean()


def test_the_api_writes_and_reads_claims_in_one_cluster(world, two_clusters, api_client):
    client = client_as(api_client, world, "it_admin")
    created = client.post(
        "/api/v1/departments/",
        {
            "name": "Research",
            "slug": "research",
            "cost_centre": "CC-7000",
            "namespaces": ["prod-eu/research", "shared-tools"],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert sorted(created.json()["namespaces"]) == ["prod-eu/research", "shared-tools"]
    refused = client.patch(
        "/api/v1/departments/research/", {"namespaces": ["prod-us/ml"]}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json()["namespaces"] == ["prod-us/ml already belongs to Training."]
