import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from departments.models import (
    Cluster,
    Department,
    Enforcement,
    GpuClass,
    Membership,
    Namespace,
    OffPeakWindow,
    Quota,
    QuotaKind,
    ServiceLevel,
    Tier,
    WorkerPool,
)
from jobs.models import GenerationJob, JobKind
from metering.models import Measure, MeteringRun, MetricSource, UsageRecord
from metering.quantities import gpu_seconds

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = "Test"
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def groups(self, create, names, **kwargs):
        if create and names:
            self.groups.add(*(Group.objects.get(name=name) for name in names))
        if create:
            self.save()


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Department {n}")
    slug = factory.Sequence(lambda n: f"department-{n}")
    cost_centre = factory.Sequence(lambda n: f"CC-{1000 + n}")


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster
        django_get_or_create = ("slug",)

    name = factory.LazyAttribute(lambda c: c.slug.replace("-", " ").title())
    slug = factory.Sequence(lambda n: f"cluster-{n}")


class WorkerPoolFactory(factory.django.DjangoModelFactory):
    """A namespace of the portal's GPU workers, in every cluster unless one is given."""

    class Meta:
        model = WorkerPool

    namespace = "gpu-workers"
    cluster = None


class NamespaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Namespace

    name = factory.Sequence(lambda n: f"ns-{n}")
    department = factory.SubFactory(DepartmentFactory)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    department = factory.SubFactory(DepartmentFactory)
    role = Membership.Role.MEMBER


class GpuClassFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GpuClass
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"GPU {n}")
    slug = factory.Sequence(lambda n: f"gpu{n}")
    model_regex = factory.LazyAttribute(lambda g: f".*{g.name}.*")
    gpu_product = factory.LazyAttribute(lambda g: f"NVIDIA-{g.slug.upper()}")
    capacity_gpus = 8


class QuotaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Quota

    department = factory.SubFactory(DepartmentFactory)
    kind = QuotaKind.JOBS_DAY
    limit = Decimal("50")
    enforcement = Enforcement.HARD_QUEUE


class ServiceLevelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceLevel
        skip_postgeneration_save = True

    department = factory.SubFactory(DepartmentFactory)
    tier = Tier.BATCH
    priority = 2
    max_queue_wait_s = 3600

    @factory.post_generation
    def gpu_classes(self, create, classes, **kwargs):
        if create:
            self.gpu_classes.set(classes or [GpuClassFactory()])


class OffPeakWindowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OffPeakWindow

    name = factory.Sequence(lambda n: f"Window {n}")
    start_time = dt.time(23, 0)
    end_time = dt.time(7, 0)
    time_zone = "Europe/Berlin"
    price_multiplier = Decimal("0.6")


# --- Metering --------------------------------------------------------------------------------


def _hour_now() -> dt.datetime:
    return timezone.now().replace(minute=0, second=0, microsecond=0)


class MetricSourceFactory(factory.django.DjangoModelFactory):
    """A GPU-seconds source. ``MetricSourceFactory(name="allocation")`` returns the built-in
    billing source that the metering migration installs."""

    class Meta:
        model = MetricSource
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"source-{n}")
    measure = Measure.GPU_SECONDS
    query_template = (
        "sum by ({{namespace_label}}, {{model_label}}) "
        "(increase(gpu_seconds_total{{{filters}}}[1h]))"
    )
    namespace_label = "namespace"
    model_label = "gpu_model"


class MeteringRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MeteringRun

    source = factory.SubFactory(MetricSourceFactory, name="allocation")
    window_start = factory.LazyFunction(lambda: _hour_now() - dt.timedelta(hours=1))
    window_end = factory.LazyAttribute(lambda run: run.window_start + dt.timedelta(hours=1))
    started_at = factory.LazyAttribute(lambda run: run.window_end)
    finished_at = factory.LazyAttribute(lambda run: run.started_at)
    status = MeteringRun.Status.SUCCEEDED


class UsageRecordFactory(factory.django.DjangoModelFactory):
    """One hour of one namespace on one GPU model, from the billing source by default.
    The namespace and GPU model follow the department and GPU class given (or read as
    unowned and unknown when those are None)."""

    class Meta:
        model = UsageRecord

    class Params:
        gpu_hours = Decimal("1")

    source = factory.SubFactory(MetricSourceFactory, name="allocation")
    department = None
    gpu_class = None
    namespace = factory.LazyAttribute(
        lambda r: f"dept-{r.department.slug}" if r.department else "unowned"
    )
    gpu_model = factory.LazyAttribute(
        lambda r: f"NVIDIA {r.gpu_class.name}" if r.gpu_class else "Mystery GPU"
    )
    hour_start = factory.LazyFunction(lambda: _hour_now() - dt.timedelta(hours=1))
    # The ledger keeps GPU-seconds: give ``gpu_hours`` (1 by default), or ``quantity`` as
    # stored (GPU-seconds, or milliseconds for a latency source).
    quantity = factory.LazyAttribute(lambda r: gpu_seconds(r.gpu_hours))
    run = factory.SubFactory(
        MeteringRunFactory,
        source=factory.SelfAttribute("..source"),
        window_start=factory.SelfAttribute("..hour_start"),
    )


# --- Jobs ------------------------------------------------------------------------------------


class JobKindFactory(factory.django.DjangoModelFactory):
    """A kind that runs Python (so it runs on any machine): by default it sleeps
    ``seconds`` and writes ``result.txt``."""

    class Meta:
        model = JobKind
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Kind {n}")
    slug = factory.Sequence(lambda n: f"kind-{n}")
    argv_template = factory.LazyFunction(
        lambda: [
            "{python}",
            "-c",
            "import sys, time; time.sleep(float(sys.argv[1])); "
            "open('result.txt', 'w').write(sys.argv[2])",
            "{seconds}",
            "{text}",
        ]
    )
    params_schema = factory.LazyFunction(
        lambda: {
            "type": "object",
            "properties": {
                "seconds": {"type": "number", "minimum": 0, "maximum": 600, "default": 0},
                "text": {"type": "string", "maxLength": 200, "default": "done"},
            },
            "additionalProperties": False,
        }
    )
    default_gpus = 1
    max_runtime_s = 600
    allowed_tiers = factory.LazyFunction(lambda: ["realtime", "interactive", "batch"])


class GenerationJobFactory(factory.django.DjangoModelFactory):
    """A job row as admission would leave it (no admission runs)."""

    class Meta:
        model = GenerationJob

    department = factory.SubFactory(DepartmentFactory)
    submitter = factory.SubFactory(UserFactory)
    kind = factory.SubFactory(JobKindFactory)
    tier = Tier.BATCH
    gpu_class = factory.SubFactory(GpuClassFactory)
    gpus = 1
    max_runtime_s = 600
    priority = 2
    state = "queued"


# --- Billing ---------------------------------------------------------------------------------


class RateCardFactory(factory.django.DjangoModelFactory):
    """A price for every tier of a GPU class since 2020, with no end."""

    class Meta:
        model = "billing.RateCard"

    gpu_class = factory.SubFactory(GpuClassFactory)
    tier = ""
    currency = "EUR"
    price_per_gpu_hour = Decimal("2.50")
    valid_from = factory.LazyFunction(lambda: dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    valid_to = None


class DepartmentMultiplierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "billing.DepartmentMultiplier"

    department = factory.SubFactory(DepartmentFactory)
    multiplier = Decimal("0.8")
    reason = "Internal subsidy"
    valid_from = factory.LazyFunction(lambda: dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    valid_to = None
