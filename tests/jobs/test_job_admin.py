"""IT steers jobs in the admin: filters, and cancel and requeue actions that go through
the services (finance only looks)."""

from jobs.models import GenerationJob, JobKind


def _action(client, action, jobs):
    return client.post(
        "/admin/jobs/generationjob/",
        {"action": action, "_selected_action": [str(j.pk) for j in jobs]},
        follow=True,
    )


def test_it_admin_cancels_jobs_through_the_service(world, client):
    client.force_login(world.user("it_admin"))
    response = _action(client, "cancel_jobs", [world.member_job, world.manager_job])
    assert response.status_code == 200
    assert GenerationJob.objects.get(pk=world.member_job.pk).state == "cancelled"
    # The succeeded job cannot be cancelled: the admin says why and changes nothing.
    assert GenerationJob.objects.get(pk=world.manager_job.pk).state == "succeeded"
    text = response.content.decode()
    assert "1 job(s) cancelled or asked to stop." in text
    assert "has already ended (succeeded)" in text


def test_it_admin_requeues_a_failed_job(world, client):
    GenerationJob.objects.filter(pk=world.manager_job.pk).update(state="failed")
    client.force_login(world.user("it_admin"))
    _action(client, "requeue_jobs", [world.manager_job])
    assert GenerationJob.objects.get(pk=world.manager_job.pk).state == "queued"


def test_finance_has_no_job_actions(world, client):
    client.force_login(world.user("finance"))
    _action(client, "cancel_jobs", [world.member_job])
    assert GenerationJob.objects.get(pk=world.member_job.pk).state == "queued"


def test_job_list_filters_by_state(world, client):
    client.force_login(world.user("it_admin"))
    page = client.get("/admin/jobs/generationjob/", {"state__exact": "succeeded"})
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1


def test_a_job_kind_with_json_nested_too_deep_is_a_field_error(world, client):
    """IT pastes an argv template nested 1,000 deep: the form says so, nothing is saved,
    and the page shows what was typed (Django's JSON field would recurse into a 500)."""
    client.force_login(world.user("it_admin"))
    deep = "[" * 1000 + "]" * 1000
    form = {
        "name": "Deep",
        "slug": "deep",
        "description": "",
        "active": "on",
        "argv_template": deep,
        "params_schema": '{"type": "object"}',
        "default_gpus": "1",
        "max_runtime_s": "60",
        "allowed_tiers": "interactive",
    }
    response = client.post("/admin/jobs/jobkind/add/", form)
    assert response.status_code == 200
    assert "nested deeper than 32 levels" in response.content.decode()
    assert not JobKind.objects.filter(slug="deep").exists()
