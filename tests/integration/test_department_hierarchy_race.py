"""IT staff move departments under each other at the same moment: the hierarchy never
loops, because parent changes are checked one at a time under a lock."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connections

from departments.models import Department
from departments.services import department_update
from tests.factories import DepartmentFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RING = 8


def _loops(department_ids) -> bool:
    parents = dict(Department.objects.filter(pk__in=department_ids).values_list("pk", "parent"))
    for start in parents:
        seen, node = set(), start
        while node is not None:
            if node in seen:
                return True
            seen.add(node)
            node = parents.get(node)
    return False


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_parent_changes_that_would_close_a_ring_leave_no_loop(postgres, attempt):
    departments = [DepartmentFactory() for _ in range(RING)]
    start = threading.Barrier(RING)
    outcomes: dict[int, str] = {}

    def move_under_next(index):
        department = Department.objects.get(pk=departments[index].pk)
        parent = Department.objects.get(pk=departments[(index + 1) % RING].pk)
        try:
            start.wait()
            department_update(department=department, parent=parent)
            outcomes[index] = "moved"
        except ValidationError as exc:
            outcomes[index] = exc.message_dict["parent"][0]
        finally:
            connections.close_all()

    threads = [threading.Thread(target=move_under_next, args=(i,)) for i in range(RING)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(outcomes) == RING
    # Each of the eight moves is fine alone; all of them together would close the ring.
    assert list(outcomes.values()).count("moved") == RING - 1
    assert not _loops([d.pk for d in departments])
