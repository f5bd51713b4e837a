"""Many IT admins give the same namespace to different departments at the same moment:
exactly one department gets it, the others get a clear refusal, nothing half-written."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connections

from departments.models import Namespace
from departments.services import department_set_namespaces
from tests.factories import DepartmentFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CLAIMANTS = 16


def test_exactly_one_of_many_concurrent_claims_wins(postgres):
    departments = [DepartmentFactory() for _ in range(CLAIMANTS)]
    for department in departments:
        Namespace.objects.create(name=f"own-{department.pk}", department=department)
    start = threading.Barrier(CLAIMANTS)
    outcomes: dict[int, str] = {}

    def claim(department):
        try:
            start.wait()
            department_set_namespaces(
                department=department, namespaces=[f"own-{department.pk}", "dept-contested"]
            )
            outcomes[department.pk] = "won"
        except ValidationError as exc:
            outcomes[department.pk] = exc.message_dict["namespaces"][0]
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(d,)) for d in departments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    winners = [pk for pk, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == CLAIMANTS and len(winners) == 1
    assert Namespace.objects.get(name="dept-contested").department_id == winners[0]
    for department in departments:
        # Losers keep exactly what they had: the failed claim wrote nothing.
        assert set(department.namespaces.values_list("name", flat=True)) == (
            {f"own-{department.pk}", "dept-contested"}
            if department.pk in winners
            else {f"own-{department.pk}"}
        )
    refusals = {outcome for outcome in outcomes.values() if outcome != "won"}
    owner = Namespace.objects.get(name="dept-contested").department
    assert refusals <= {
        f"dept-contested already belongs to {owner}.",
        "One of these namespaces was just given to another department.",
    }
