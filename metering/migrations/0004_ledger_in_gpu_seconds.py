"""The ledger keeps GPU time as GPU-seconds, so that sums of it are exact.

Rows of every GPU-hours source are multiplied by 3600 (exact: a value with 6 decimal
places times 3600 still has at most 6). The built-in sources whose query is still the one
shipped (metering/0002) now ask Prometheus for GPU-seconds directly, with the same samples:
"× 60" where they divided by 60, the counter's increase without "/ 3600". A source IT wrote
itself keeps its query and measure (GPU-hours); the collector scales its answers. Priced
amounts do not move: seconds × price / 3600 is the hours × price they were.
"""

from django.db import migrations, models
from django.db.models import F, Q

SHIPPED_ALLOCATION = """\
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

SHIPPED_DEVICE = """\
sum by ({{namespace_label}}, {{model_label}}) (
  sum_over_time((
    count by ({{namespace_label}}, exported_pod, {{model_label}}, Hostname, gpu) (
      DCGM_FI_DEV_GPU_UTIL{{{filters}}{{namespace_label}}!=""}
    )
  )[59m59s:1m] offset 1m)
) / 60"""

SHIPPED_JOBS = """\
sum by ({{namespace_label}}, {{model_label}}) (
  increase(portal_job_gpu_seconds_total{{{filters}}}[1h])
) / 3600"""

SHIPPED_UTILISATION = """\
sum by ({{namespace_label}}, {{model_label}}) (
  sum_over_time((
    DCGM_FI_DEV_GPU_UTIL{{{filters}}{{namespace_label}}!=""} / 100
  )[59m59s:1m] offset 1m)
) / 60"""

# name: (the query shipped in 0002, the same query answering in GPU-seconds)
IN_SECONDS = {
    "allocation": (SHIPPED_ALLOCATION, SHIPPED_ALLOCATION.removesuffix(" / 60") + " * 60"),
    "device": (SHIPPED_DEVICE, SHIPPED_DEVICE.removesuffix(" / 60") + " * 60"),
    "jobs": (SHIPPED_JOBS, SHIPPED_JOBS.removesuffix(" / 3600")),
    "utilisation": (SHIPPED_UTILISATION, SHIPPED_UTILISATION.removesuffix(" / 60") + " * 60"),
}


def to_seconds(apps, schema_editor):
    MetricSource = apps.get_model("metering", "MetricSource")
    UsageRecord = apps.get_model("metering", "UsageRecord")
    UsageRecord.objects.filter(source__measure="gpu_hours").update(quantity=F("quantity") * 3600)
    for name, (shipped, seconds) in IN_SECONDS.items():
        MetricSource.objects.filter(name=name, measure="gpu_hours", query_template=shipped).update(
            query_template=seconds, measure="gpu_seconds"
        )


def to_hours(apps, schema_editor):
    MetricSource = apps.get_model("metering", "MetricSource")
    UsageRecord = apps.get_model("metering", "UsageRecord")
    for name, (shipped, seconds) in IN_SECONDS.items():
        MetricSource.objects.filter(
            name=name, measure="gpu_seconds", query_template=seconds
        ).update(query_template=shipped, measure="gpu_hours")
    UsageRecord.objects.filter(source__measure__in=["gpu_hours", "gpu_seconds"]).update(
        quantity=F("quantity") / 3600
    )


class Migration(migrations.Migration):
    dependencies = [("metering", "0003_audit_history")]

    operations = [
        migrations.RemoveConstraint(
            model_name="metricsource", name="billing_source_measures_gpu_hours"
        ),
        migrations.RemoveConstraint(model_name="metricsource", name="metric_source_measure_valid"),
        migrations.AddConstraint(
            model_name="metricsource",
            constraint=models.CheckConstraint(
                condition=Q(measure__in=["gpu_seconds", "gpu_hours", "latency_p95_ms"]),
                name="metric_source_measure_valid",
            ),
        ),
        migrations.AlterField(
            model_name="metricsource",
            name="measure",
            field=models.CharField(
                choices=[
                    ("gpu_seconds", "GPU-seconds"),
                    ("gpu_hours", "GPU-hours"),
                    ("latency_p95_ms", "p95 latency (ms)"),
                ],
                default="gpu_seconds",
                help_text="What the query returns per hour; GPU time is kept as GPU-seconds "
                "either way.",
                max_length=20,
            ),
        ),
        migrations.AlterField(
            model_name="historicalmetricsource",
            name="measure",
            field=models.CharField(
                choices=[
                    ("gpu_seconds", "GPU-seconds"),
                    ("gpu_hours", "GPU-hours"),
                    ("latency_p95_ms", "p95 latency (ms)"),
                ],
                default="gpu_seconds",
                help_text="What the query returns per hour; GPU time is kept as GPU-seconds "
                "either way.",
                max_length=20,
            ),
        ),
        migrations.AddConstraint(
            model_name="metricsource",
            constraint=models.CheckConstraint(
                condition=Q(is_billing=False) | Q(measure__in=["gpu_seconds", "gpu_hours"]),
                name="billing_source_measures_gpu_time",
                violation_error_message="Only a source of GPU time can bill.",
            ),
        ),
        migrations.AlterField(
            model_name="usagerecord",
            name="quantity",
            field=models.DecimalField(
                decimal_places=6,
                help_text="GPU-seconds (exact: sums of them are exact), or milliseconds for a "
                "latency source.",
                max_digits=18,
            ),
        ),
        migrations.RunPython(to_seconds, to_hours),
    ]
