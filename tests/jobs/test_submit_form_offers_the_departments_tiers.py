"""Step 1 of the submit form offers only the tiers the user's departments have service
levels for, and carries what its script needs to narrow the choice to the chosen department
and kind (tiers, off-peak notices); the server still refuses a tier the department has no
service level for."""

import json
import re

import pytest
from django.contrib.staticfiles import finders

from departments.models import Membership, Tier
from tests import factories
from tests.conftest import client_as


def _tier_options(page: str) -> list[str]:
    select = re.search(r'<select name="tier".*?</select>', page, re.S)
    assert select, "no tier choice on the page"
    return re.findall(r'<option value="(\w+)"', select.group(0))


def _tier_rules(page: str) -> dict:
    found = re.search(
        r'<script id="job-choice-tiers" type="application/json">(.*?)</script>', page, re.S
    )
    assert found, "no tier rules on the page"
    return json.loads(found.group(1))


def _form(client, world, role="manager", query="") -> str:
    response = client_as(client, world, role).get(f"/jobs/submit/{query}")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def marketing_interactive(world):
    return factories.ServiceLevelFactory(
        department=world.marketing, tier=Tier.INTERACTIVE, priority=5, gpu_classes=[world.t4]
    )


@pytest.fixture
def manager_of_both(world):
    """The marketing manager is a member of training too, which has realtime work."""
    factories.MembershipFactory(
        user=world.user("manager"), department=world.training, role=Membership.Role.MEMBER
    )
    factories.ServiceLevelFactory(
        department=world.training, tier=Tier.REALTIME, priority=9, gpu_classes=[world.a100]
    )


def test_the_tier_field_offers_only_the_departments_tiers(world, client, marketing_interactive):
    # Marketing has batch and interactive service levels, no realtime one.
    assert _tier_options(_form(client, world)) == ["interactive", "batch"]


def test_with_several_departments_every_departments_tiers_are_offered(
    world, client, manager_of_both
):
    assert _tier_options(_form(client, world)) == ["realtime", "interactive", "batch"]


def test_the_page_says_which_tiers_each_department_and_kind_has(
    world, client, manager_of_both, marketing_interactive
):
    world.marketing_sla.hold_for_off_peak = True
    world.marketing_sla.save()
    world.lipsync.allowed_tiers = ["batch", "interactive"]
    world.lipsync.save()
    rules = _tier_rules(_form(client, world))
    assert rules == {
        "departments": {
            "marketing": {"tiers": ["interactive", "batch"], "default": "interactive"},
            "training": {"tiers": ["realtime", "interactive"], "default": "realtime"},
        },
        "kinds": {"lipsync-render": ["interactive", "batch"]},
    }


def test_a_tier_the_chosen_department_lacks_is_still_refused(world, client, manager_of_both):
    # Training's interactive tier is offered, but marketing has none: the service says so.
    page = _form(client, world, query="?department=marketing&kind=lipsync-render&tier=realtime")
    assert "Marketing has no service level for realtime work." in page
    assert 'name="params-seconds"' not in page


def test_the_off_peak_notices_say_whose_and_which_tier_they_are_and_the_script_is_there(
    world, client, manager_of_both
):
    world.marketing_sla.hold_for_off_peak = True
    world.marketing_sla.save()
    page = _form(client, world)
    notice = re.search(r'<p class="notice off-peak"([^>]*)>Batch jobs of Marketing', page)
    assert notice is not None
    assert 'data-department="marketing"' in notice.group(1)
    assert 'data-tier="batch"' in notice.group(1)
    # The notice sits inside the step 1 form the script narrows.
    form = re.search(r"<form [^>]*data-job-choice[^>]*>.*?</form>", page, re.S)
    assert form is not None and "Batch jobs of Marketing" in form.group(0)
    assert '<script src="/static/portal/submit.js" defer></script>' in page
    assert finders.find("portal/submit.js") is not None


def test_the_parameters_step_has_no_tier_script(world, client):
    page = _form(client, world, query="?department=marketing&kind=lipsync-render&tier=batch")
    assert "2. Parameters" in page
    assert "portal/submit.js" not in page
