"""Label values are whatever an exporter sends: Kubernetes keeps namespace names tame, but a
DCGM exporter's ``exported_namespace`` or a node's model label can hold quotes, commas,
backslashes, tabs, newlines or text that looks like a CSV or COPY null. The ledger write
(``COPY`` on PostgreSQL) must keep each value exactly as Prometheus returned it, keep an
owner's id and leave a missing owner or GPU class empty, never an empty string or 0."""

import datetime as dt
from decimal import Decimal

import pytest

from demo import local_prometheus, synthetic
from metering import services
from metering.models import MeteringRun, MetricSource, UsageRecord
from tests.conftest import require_prometheus
from tests.integration.conftest import A100, MI300

pytestmark = pytest.mark.integration

HOSTILE_NAMESPACES = [
    'quote"d',
    "comma,separated",
    "back\\slash",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "\\N",  # COPY's text null
    "NULL",
    '""',  # a CSV empty quoted field
    " padded ",
    "ünïcødé-名前-🚀",
    "semi;colon|pipe",
    "x" * 253,
]
HOSTILE_MODEL = 'NVIDIA A100, "80GB"\tedition'  # matches the A100 class's .*A100.*


@pytest.fixture(scope="module")
def hostile_prometheus(tmp_path_factory):
    require_prometheus()
    root = tmp_path_factory.mktemp("hostile-labels")
    day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day -= dt.timedelta(days=2)
    pods = [
        synthetic.Pod(
            namespace, f"pod-{index}", A100, 1 + index % 3, day, day + dt.timedelta(hours=3)
        )
        for index, namespace in enumerate(HOSTILE_NAMESPACES)
    ] + [
        synthetic.Pod(
            "dept-marketing", "renders", HOSTILE_MODEL, 2, day, day + dt.timedelta(hours=2)
        ),
        synthetic.Pod("dept-training", "unknown-model", MI300, 1, day, day + dt.timedelta(hours=1)),
    ]
    synthetic.write_openmetrics(root / "history.om", pods=pods, step_s=30, dcgm=False)
    local_prometheus.backfill(root / "history.om", root / "data")
    with local_prometheus.running(
        root / "data", lookback_delta="31s", log_path=root / "prometheus.log"
    ) as server:
        yield server.url, day, pods


def test_every_label_value_reaches_the_ledger_exactly_with_its_owner_and_class(
    world, hostile_prometheus
):
    url, day, pods = hostile_prometheus
    source = MetricSource.objects.get(name="allocation")
    source.prometheus_url = url
    source.save()
    run = services.usage_pull(source=source, start=day, end=day + dt.timedelta(hours=6))
    assert run.status == MeteringRun.Status.SUCCEEDED, run.error

    rows = UsageRecord.objects.filter(source=source, quantity__gt=0)
    ledger = {(row.namespace, row.gpu_model, row.hour_start): row for row in rows.select_related()}
    expected = synthetic.expected_gpu_seconds_by_hour(pods)
    assert {key: row.quantity for key, row in ledger.items()} == {
        key: Decimal(seconds) for key, seconds in expected.items() if seconds
    }
    assert {namespace for namespace, _, _ in ledger} == set(HOSTILE_NAMESPACES) | {
        "dept-marketing",
        "dept-training",
    }
    for (namespace, model, _), row in ledger.items():
        if namespace == "dept-marketing":
            assert (model, row.department, row.gpu_class) == (
                HOSTILE_MODEL,
                world.marketing,
                world.a100,
            )
        elif namespace == "dept-training":
            assert (row.department, row.gpu_class_id) == (world.training, None)
        else:
            assert (model, row.department_id, row.gpu_class) == (A100, None, world.a100)
    assert run.rows_written == len(ledger)

    # Pulled again: the same rows, none added, none zeroed.
    again = services.usage_pull(source=source, start=day, end=day + dt.timedelta(hours=6))
    assert again.status == MeteringRun.Status.SUCCEEDED, again.error
    assert UsageRecord.objects.filter(source=source).count() == len(ledger)
    assert {
        (row.namespace, row.gpu_model, row.hour_start): row.quantity
        for row in UsageRecord.objects.filter(source=source)
    } == {key: row.quantity for key, row in ledger.items()}
