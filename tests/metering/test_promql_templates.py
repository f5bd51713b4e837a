"""Metric source templates become PromQL with escaped label values; a typo in a placeholder
or a bad label name is refused before anything reaches Prometheus."""

import re

import pytest
from django.core.exceptions import ValidationError

from metering import promql
from metering.models import MetricSource


def test_label_values_are_escaped():
    assert promql.escape_label_value('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert promql.label_matchers({"zone": "eu", "cluster": 'prod "1"'}) == (
        'cluster="prod \\"1\\"",zone="eu",'
    )


def test_placeholders_are_filled_and_a_typo_is_refused():
    query = promql.render(
        'sum by ({{namespace_label}}, {{model_label}}) (m{{{filters}}x="1"})',
        filters={"cluster": "prod"},
        namespace_label="exported_namespace",
        model_label="modelName",
    )
    assert query == 'sum by (exported_namespace, modelName) (m{cluster="prod",x="1"})'
    with pytest.raises(ValueError, match=re.escape("Unknown placeholder {{filter}}")):
        promql.render("m{{{filter}}}", filters={}, namespace_label="n", model_label="")


def test_every_built_in_source_renders(db):
    names = set()
    for source in MetricSource.objects.all():
        source.full_clean()
        assert "{{" not in source.query()
        names.add(source.name)
    assert names == {"allocation", "device", "jobs", "utilisation", "latency"}
    assert MetricSource.objects.get(is_billing=True).name == "allocation"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("query_template", "m{{{cluster}}}", "Unknown placeholder"),
        ("label_filters", {"bad-label": "x"}, "not a Prometheus label name"),
        ("label_filters", {"cluster": 3}, "must be a string"),
        ("namespace_label", "exported-namespace", "A Prometheus label name"),
    ],
)
def test_a_source_with_a_bad_template_or_label_says_what_is_wrong(db, field, value, message):
    source = MetricSource.objects.get(name="device")
    setattr(source, field, value)
    with pytest.raises(ValidationError) as caught:
        source.full_clean()
    assert message in str(caught.value.message_dict[field])


def test_only_one_source_bills_and_it_must_measure_gpu_time(db):
    device = MetricSource.objects.get(name="device")
    device.is_billing = True
    with pytest.raises(ValidationError, match="Another source already bills"):
        device.full_clean()
    latency = MetricSource.objects.get(name="latency")
    MetricSource.objects.update(is_billing=False)
    latency.is_billing = True
    with pytest.raises(ValidationError, match="Only a source of GPU time can bill"):
        latency.full_clean()
