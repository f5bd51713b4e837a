"""The built-in per-minute sources take the hour's 60 samples at minutes :01 to :60 (the
hour's end), not :00 to :59.

A sample at minute m shows what Prometheus last scraped, up to one scrape interval before
m: it describes the minute that ends at m. Taken at :00 to :59, the sample at the next
hour's :00 still saw a pod that stopped at the hour's end (its last scrape was before the
end), so a minute of it landed in the next hour, an hour in which the pod never ran; and
the hour's own :00 sample missed a pod that started exactly at the hour. At :01 to :60
each sample belongs to the minute it describes: a pod that runs across an hour's
boundaries is counted 60 times in each hour, and a start or an end inside an hour is off
by at most one minute, in that hour.

"[59m59s:1m]" evaluated at the hour's end takes the instants :01 to :60 on Prometheus 2
(inclusive ranges) and 3 (left-open) alike; each reads its selectors 1 ms before its
instant ("offset 1ms"), so that a sample stamped on the very instant a minute ends
describes the next minute. Only sources whose query is still the shipped one
(metering/0004) change; a query IT wrote is left as it is.
"""

import importlib

from django.db import migrations

OFFSET = "[59m59s:1m] offset 1m)"
AT_THE_END = "[59m59s:1m])"
SOURCES = ("allocation", "device", "utilisation")
# Each selector inside the subquery reads the state just before its minute's end (1 ms),
# so a sample stamped exactly at a minute's end (a scrape on the very instant a pod
# started on the hour) belongs to the minute it opens, not the one it closes.
SELECTORS = (
    'kube_pod_container_resource_requests{{{filters}}resource="nvidia_com_gpu"}',
    'kube_pod_status_phase{{{filters}}phase="Running"}',
    "kube_node_labels{{{filters}}}",
    'DCGM_FI_DEV_GPU_UTIL{{{filters}}{{namespace_label}}!=""}',
)


def _at_the_end(query: str) -> str:
    query = query.replace(OFFSET, AT_THE_END)
    for selector in SELECTORS:
        query = query.replace(selector, f"{selector} offset 1ms")
    return query


def _shipped(apps) -> dict[str, str]:
    """The queries 0004 left, by source name."""
    previous = importlib.import_module("metering.migrations.0004_ledger_in_gpu_seconds")
    return {name: previous.IN_SECONDS[name][1] for name in SOURCES}


def at_the_end(apps, schema_editor):
    MetricSource = apps.get_model("metering", "MetricSource")
    for name, query in _shipped(apps).items():
        MetricSource.objects.filter(name=name, query_template=query).update(
            query_template=_at_the_end(query)
        )


def at_the_start(apps, schema_editor):
    MetricSource = apps.get_model("metering", "MetricSource")
    for name, query in _shipped(apps).items():
        MetricSource.objects.filter(name=name, query_template=_at_the_end(query)).update(
            query_template=query
        )


class Migration(migrations.Migration):
    dependencies = [("metering", "0004_ledger_in_gpu_seconds")]

    operations = [migrations.RunPython(at_the_end, at_the_start)]
