"""The built-in metric sources, ready to use against kube-state-metrics, the DCGM exporter
and the portal's own workers; and who may do what with metering.

The query templates are copied here as they were when this migration was written, so that
later changes to the defaults in metering/promql.py never rewrite an installed source.
"""

from django.db import migrations

from core.roles import FINANCE, IT_ADMIN, grant_group_permissions

# GPU-hours of an hour are the time-integral of GPUs: the hour's 60 one-minute samples summed
# and divided by 60 (a pod with 2 GPUs for 20 minutes is 0.667 GPU-hours; avg_over_time would
# call it 2). "[59m59s:1m] offset 1m" evaluated at the hour's end takes exactly the samples at
# minutes :00 to :59 of the hour, on Prometheus 2 (inclusive ranges) and 3 (left-open) alike;
# "[1h:1m]" would take 61 on Prometheus 2.

ALLOCATION = """\
sum by (namespace, gpu_model) (
  sum_over_time((
    sum by (namespace, pod, node) (
      kube_pod_container_resource_requests{{{filters}}resource="nvidia_com_gpu"}
    )
    * on (namespace, pod) group_left ()
      (max by (namespace, pod) (kube_pod_status_phase{{{filters}}phase="Running"}) == 1)
    * on (node) group_left (gpu_model)
      label_replace(
        max by (node, label_nvidia_com_gpu_product) (kube_node_labels{{{filters}}}),
        "gpu_model", "$1", "label_nvidia_com_gpu_product", "(.+)"
      )
  )[59m59s:1m] offset 1m)
) / 60"""

DEVICE = """\
sum by ({{namespace_label}}, {{model_label}}) (
  sum_over_time((
    count by ({{namespace_label}}, exported_pod, {{model_label}}, Hostname, gpu) (
      DCGM_FI_DEV_GPU_UTIL{{{filters}}{{namespace_label}}!=""}
    )
  )[59m59s:1m] offset 1m)
) / 60"""

JOBS = """\
sum by ({{namespace_label}}, {{model_label}}) (
  increase(portal_job_gpu_seconds_total{{{filters}}}[1h])
) / 3600"""

UTILISATION = """\
sum by ({{namespace_label}}, {{model_label}}) (
  sum_over_time((
    DCGM_FI_DEV_GPU_UTIL{{{filters}}{{namespace_label}}!=""} / 100
  )[59m59s:1m] offset 1m)
) / 60"""

LATENCY = """\
1000 * histogram_quantile(0.95,
  sum by (le, {{namespace_label}}) (
    rate(http_request_duration_seconds_bucket{{{filters}}}[1h])
  )
)"""

SOURCES = [
    {
        "name": "allocation",
        "description": "GPUs requested by running pods (kube-state-metrics), with the GPU "
        "model from the node's nvidia.com/gpu.product label. Needs kube-state-metrics with "
        "--metric-labels-allowlist=nodes=[nvidia.com/gpu.product]. Bills.",
        "query_template": ALLOCATION,
        "namespace_label": "namespace",
        "model_label": "gpu_model",
        "is_billing": True,
    },
    {
        "name": "device",
        "description": "GPUs in use per pod, from the NVIDIA DCGM exporter (the pod's "
        "namespace arrives as exported_namespace).",
        "query_template": DEVICE,
        "namespace_label": "exported_namespace",
        "model_label": "modelName",
    },
    {
        "name": "jobs",
        "description": "GPU-seconds the portal's own workers counted "
        "(portal_job_gpu_seconds_total), per namespace and GPU class; counter resets are "
        "handled by increase().",
        "query_template": JOBS,
        "namespace_label": "namespace",
        "model_label": "gpu_class",
    },
    {
        "name": "utilisation",
        "description": "Busy GPU-hours: DCGM_FI_DEV_GPU_UTIL as a fraction, integrated over "
        "the hour. Divided by the device source it gives efficiency. Never billed.",
        "query_template": UTILISATION,
        "namespace_label": "exported_namespace",
        "model_label": "modelName",
    },
    {
        "name": "latency",
        "description": "p95 request latency per namespace over each hour, from the "
        "services' http_request_duration_seconds histogram; held against SLA targets.",
        "query_template": LATENCY,
        "namespace_label": "namespace",
        "model_label": "",
        "measure": "latency_p95_ms",
    },
]

GRANTS = {
    FINANCE: [f"metering.view_{m}" for m in ("metricsource", "meteringrun", "usagerecord")],
    IT_ADMIN: [
        *(f"metering.{a}_metricsource" for a in ("view", "add", "change", "delete")),
        "metering.view_meteringrun",
        "metering.view_usagerecord",
        # The schedule of periodic tasks (django-celery-beat) is IT's to tune.
        *(
            f"django_celery_beat.{a}_{m}"
            for m in (
                "periodictask",
                "intervalschedule",
                "crontabschedule",
                "solarschedule",
                "clockedschedule",
            )
            for a in ("view", "add", "change", "delete")
        ),
    ],
}


def install(apps, schema_editor):
    MetricSource = apps.get_model("metering", "MetricSource")
    for spec in SOURCES:
        MetricSource.objects.get_or_create(name=spec["name"], defaults=spec)
    grant_group_permissions(apps, schema_editor, GRANTS)


class Migration(migrations.Migration):
    dependencies = [
        ("metering", "0001_initial"),
        ("departments", "0002_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
