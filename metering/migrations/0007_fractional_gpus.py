"""The built-in allocation and device sources see fractions of GPUs.

- MIG: pods that request MIG instances (``nvidia.com/mig-1g.10gb``, which
  kube-state-metrics reports as ``resource="nvidia_com_mig_1g_10gb"``; the DCGM exporter
  labels them ``GPU_I_PROFILE``) are kept with their profile in the GPU model:
  ``NVIDIA-A100-SXM4-80GB MIG 1g_10gb``, which a GPU class with that MIG profile matches.
- Time-slicing: a time-sliced GPU's node carries the product label with ``-SHARED``
  (``Tesla-T4-SHARED``), which a GPU class of that fraction (1/replicas) matches.

Only sources whose query is still the one shipped (metering/0005) change.
"""

import importlib

from django.db import migrations

ALLOCATION = """\
sum by (namespace, gpu_model) (
  label_replace(
    label_join(
      sum by (namespace, gpu_model, mig) (
        sum_over_time((
          sum by (namespace, pod, node, mig) (
            label_replace(
              kube_pod_container_resource_requests{{{filters}}resource=~"nvidia_com_gpu|nvidia_com_mig_.+"} offset 1ms,
              "mig", "$1", "resource", "nvidia_com_mig_(.+)"
            )
          )
          * on (namespace, pod) group_left ()
            (max by (namespace, pod) (kube_pod_status_phase{{{filters}}phase="Running"} offset 1ms) == 1)
          * on (node) group_left (gpu_model)
            label_replace(
              max by (node, label_nvidia_com_gpu_product) (kube_node_labels{{{filters}}} offset 1ms),
              "gpu_model", "$1", "label_nvidia_com_gpu_product", "(.+)"
            )
        )[59m59s:1m])
      ),
      "gpu_model", " MIG ", "gpu_model", "mig"
    ),
    "gpu_model", "$1", "gpu_model", "(.*) MIG "
  )
) * 60"""

DEVICE = """\
sum by ({{namespace_label}}, {{model_label}}) (
  label_replace(
    label_join(
      sum by ({{namespace_label}}, {{model_label}}, GPU_I_PROFILE) (
        sum_over_time((
          count by ({{namespace_label}}, exported_pod, {{model_label}}, Hostname, gpu, GPU_I_PROFILE, GPU_I_ID) (
            DCGM_FI_DEV_GPU_UTIL{{{filters}}{{namespace_label}}!=""} offset 1ms
          )
        )[59m59s:1m])
      ),
      "{{model_label}}", " MIG ", "{{model_label}}", "GPU_I_PROFILE"
    ),
    "{{model_label}}", "$1", "{{model_label}}", "(.*) MIG "
  )
) * 60"""

NEW = {"allocation": ALLOCATION, "device": DEVICE}


def _shipped() -> dict[str, str]:
    """The queries 0005 left, by source name."""
    previous = importlib.import_module("metering.migrations.0005_samples_at_the_end_of_each_minute")
    seconds = importlib.import_module("metering.migrations.0004_ledger_in_gpu_seconds")
    return {name: previous._at_the_end(seconds.IN_SECONDS[name][1]) for name in NEW}


def see_fractions(apps, schema_editor):
    MetricSource = apps.get_model("metering", "MetricSource")
    for name, query in _shipped().items():
        MetricSource.objects.filter(name=name, query_template=query).update(
            query_template=NEW[name]
        )


def see_whole_gpus(apps, schema_editor):
    MetricSource = apps.get_model("metering", "MetricSource")
    for name, query in _shipped().items():
        MetricSource.objects.filter(name=name, query_template=NEW[name]).update(
            query_template=query
        )


class Migration(migrations.Migration):
    dependencies = [("metering", "0006_usage_per_cluster")]

    operations = [migrations.RunPython(see_fractions, see_whole_gpus)]
