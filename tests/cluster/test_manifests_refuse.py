"""A fleet that cannot be rendered is refused whole: ``render`` raises RenderError naming
what to fix (the department, the GPU class), ``manage.py cluster_manifests`` writes nothing
(a directory written before is left byte for byte), and the API answers 409 with the same
reasons. And the API itself: YAML that parses, an ETag that changes exactly when the objects
do, a 304 for the one sent back, 400 for a cluster or department it does not know, one
department's objects and the flavors its queue uses."""

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.db import DataError, IntegrityError, transaction

from cluster import manifests
from core.roles import FINANCE, IT_ADMIN
from departments.models import Department, GpuClass, Namespace, Quota, QuotaKind
from departments.services import department_set_namespaces
from tests import factories
from tests.cluster.conftest import AT, bodies

URL = "/api/v1/cluster/manifests/"


def _namespace(name: str):
    def break_it():
        Namespace.objects.filter(name="dept-marketing").update(name=name)

    return break_it


def _marketing(**fields):
    def break_it():
        Department.objects.filter(slug="marketing").update(**fields)

    return break_it


def _marketing_gpus(limit: int, gpu_class: str | None = "t4"):
    def break_it():
        Quota.objects.filter(department__slug="marketing", kind=QuotaKind.GPUS).delete()
        factories.QuotaFactory(
            department=Department.objects.get(slug="marketing"),
            kind=QuotaKind.GPUS,
            limit=limit,
            gpu_class=GpuClass.objects.get(slug=gpu_class) if gpu_class else None,
        )

    return break_it


def _claimed_twice():
    """Training claims prod-eu's dept-marketing, which Marketing claims in every cluster:
    written past clean() and the service, which both refuse it."""
    prod = factories.ClusterFactory(slug="prod-eu")
    Namespace.objects.create(
        name="dept-marketing", cluster=prod, department=Department.objects.get(slug="training")
    )


def _no_product():
    GpuClass.objects.filter(slug="t4").update(gpu_product="")


def _gpu_class_slug():
    GpuClass.objects.filter(slug="t4").update(slug="T4_Tesla")


BROKEN = {
    "namespace kube-system": (
        _namespace("kube-system"),
        "Department Marketing: namespace “kube-system” is one Kubernetes keeps for itself",
    ),
    "namespace default": (
        _namespace("default"),
        "Department Marketing: namespace “default” is one Kubernetes keeps for itself",
    ),
    "a department slug that is no DNS label": (
        _marketing(slug="Marketing_EU"),
        "Department Marketing: its slug “Marketing_EU” names its Kueue queues and must be a "
        "Kubernetes name",
    ),
    "more T4s than the fleet holds": (
        _marketing_gpus(17),
        "Department Marketing: its quota of 17 GPUs on T4 is more than the fleet's 16 "
        "nvidia.com/gpu; no flavor can hold it.",
    ),
    "a quota on a class no service level allows": (
        _marketing_gpus(2, "a100"),
        "Department Marketing: its quota of 2 GPUs on A100 has no flavor to hold it: none of "
        "its service levels may use A100.",
    ),
    "more GPUs department-wide than its classes hold": (
        _marketing_gpus(17, None),
        "Department Marketing: its quota of 17 GPUs is more than the 16 whole GPUs of the "
        "classes its service levels may use",
    ),
    "two departments claiming one namespace in one cluster": (
        _claimed_twice,
        "Namespace dept-marketing in cluster prod-eu is claimed by both Marketing and Training",
    ),
    "a cost centre with a space": (
        _marketing(cost_centre="CC 4100"),
        "Department Marketing: its cost centre “CC 4100” is not a Kubernetes label value",
    ),
    "a GPU class without its product label": (
        _no_product,
        "GPU class T4: set its GPU product (the nvidia.com/gpu.product node label)",
    ),
    "a GPU class slug that is no DNS label": (
        _gpu_class_slug,
        "GPU class T4: its slug “T4_Tesla” names its Kueue ResourceFlavor and must be a "
        "Kubernetes name",
    ),
}


def _snapshot(directory) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(directory.rglob("*"))
    }


@pytest.fixture
def it_admin():
    return factories.UserFactory(username="ivan", groups=[IT_ADMIN])


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_a_fleet_that_cannot_be_rendered_is_refused_everywhere(
    demo, case, tmp_path, client, it_admin
):
    break_it, expected = BROKEN[case]
    out = tmp_path / "out"
    call_command("cluster_manifests", "--out", str(out))
    written = _snapshot(out)
    assert "default/kustomization.yaml" in written

    break_it()
    with pytest.raises(manifests.RenderError) as refused:
        manifests.render(at=AT)
    assert any(expected in error for error in refused.value.errors), refused.value.errors

    with pytest.raises(CommandError, match="Nothing was written") as command:
        call_command("cluster_manifests", "--out", str(out))
    assert expected in str(command.value)
    assert _snapshot(out) == written
    with pytest.raises(CommandError):
        call_command("cluster_manifests", "--out", str(tmp_path / "fresh"))
    assert not (tmp_path / "fresh").exists()

    client.force_login(it_admin)
    response = client.get(URL)
    assert response.status_code == 409
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["errors"] == refused.value.errors


def test_every_problem_is_told_at_once(demo):
    _namespace("kube-system")()
    _marketing(cost_centre="CC 4100")()
    _no_product()
    with pytest.raises(manifests.RenderError) as refused:
        manifests.render(at=AT)
    errors = refused.value.errors
    assert any("kube-system" in e for e in errors)
    assert any("CC 4100" in e for e in errors)
    assert any(e.startswith("GPU class T4: set its GPU product") for e in errors)
    assert len(errors) == len(set(errors))


@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        ("Dept_Marketing", IntegrityError),  # the CHECK namespace_name_is_dns_label
        ("-marketing", IntegrityError),
        ("dept.marketing", IntegrityError),
        ("d" * 64, DataError),  # varchar(63)
    ],
)
def test_a_namespace_no_dns_label_never_reaches_the_rendering(demo, name, refusal):
    """The database refuses a namespace name that is not an RFC 1123 label, however it is
    written, so the rendering's own check of it (DNS_LABEL) cannot be reached from the
    database; it stays for the departments' slugs, which only a form checks."""
    with pytest.raises(refusal), transaction.atomic():
        Namespace.objects.filter(name="dept-marketing").update(name=name)


def test_one_department_claiming_a_namespace_everywhere_and_in_one_cluster(demo, tmp_path):
    """Marketing claims dept-marketing in every cluster and in prod-eu: the service lets it
    (it checks other departments' claims only). Either the rendering refuses it, naming the
    namespace, or prod-eu holds one object of each name: never the same object twice, which
    kustomize refuses to build."""
    factories.ClusterFactory(slug="prod-eu")
    marketing = Department.objects.get(slug="marketing")
    department_set_namespaces(
        department=marketing, namespaces=["dept-marketing", "prod-eu/dept-marketing"]
    )
    try:
        fleet = manifests.render(at=AT)
    except manifests.RenderError as refused:
        assert any("dept-marketing" in e for e in refused.errors), refused.errors
        return
    for cluster in fleet.clusters:
        names = [m.filename for m in cluster.manifests]
        twice = sorted({n for n in names if names.count(n) > 1})
        assert twice == [], f"{cluster.slug} holds these objects twice: {twice}"


# --- The API ---------------------------------------------------------------------------------


def test_the_api_serves_every_object_as_yaml_that_parses(demo, client, it_admin):
    client.force_login(it_admin)
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml; charset=utf-8"
    docs = [d for d in yaml.safe_load_all(response.content.decode()) if d is not None]
    assert docs == bodies(manifests.render())
    assert response.content.decode().count("# cluster: default\n") == len(docs)


def test_the_etag_says_when_nothing_changed(demo, client, it_admin):
    client.force_login(it_admin)
    first = client.get(URL)
    etag = first["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = client.get(URL, headers={"if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    listed = client.get(URL, headers={"if-none-match": f'"0123", {etag}'})
    assert listed.status_code == 304
    other = client.get(URL, headers={"if-none-match": '"0123"'})
    assert other.status_code == 200


def test_the_etag_changes_when_a_quota_does(demo, client, it_admin):
    client.force_login(it_admin)
    etag = client.get(URL)["ETag"]
    quota = Quota.objects.get(department__slug="marketing", kind=QuotaKind.GPUS)
    quota.limit = 6
    quota.save()
    changed = client.get(URL, headers={"if-none-match": etag})
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert "borrowingLimit: 6" in changed.content.decode()


def test_an_unknown_cluster_or_department_is_a_400(demo, client, it_admin):
    client.force_login(it_admin)
    response = client.get(URL, {"cluster": "prod-mars"})
    assert response.status_code == 400
    assert "prod-mars" in response.json()["cluster"][0]
    assert "default" in response.json()["cluster"][0]
    response = client.get(URL, {"department": "legal"})
    assert response.status_code == 400
    assert "legal" in response.json()["department"][0]


def test_one_departments_objects_and_the_flavors_its_queue_uses(demo, client, it_admin):
    client.force_login(it_admin)
    response = client.get(URL, {"department": "marketing", "cluster": "default"})
    assert response.status_code == 200
    docs = list(yaml.safe_load_all(response.content.decode()))
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
        ("ClusterQueue", "marketing"),
        ("LocalQueue", "marketing"),
        ("Namespace", "dept-marketing"),
        ("ResourceFlavor", "t4"),
        ("ResourceQuota", "gpu"),
        ("WorkloadPriorityClass", "marketing-batch"),
        ("WorkloadPriorityClass", "marketing-interactive"),
    ]
    everything = client.get(URL)
    assert response["ETag"] != everything["ETag"]


@pytest.mark.parametrize("who", ["finance", "anonymous"])
def test_only_it_reads_the_manifests(demo, client, who):
    if who == "finance":
        client.force_login(factories.UserFactory(username="fiona", groups=[FINANCE]))
    response = client.get(URL)
    assert response.status_code in (401, 403)
    assert "kind:" not in response.content.decode()
