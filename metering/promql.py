"""Building PromQL from a metric source's template.

A template is PromQL with three placeholders, filled here and nowhere else:

- ``{{filters}}``: the source's extra label matchers (``cluster="prod",``), each value
  escaped, ending in a comma so that it sits at the start of any selector's braces;
- ``{{namespace_label}}`` and ``{{model_label}}``: the label names that carry the namespace
  and the GPU model in the result.

The query is evaluated at the end of every UTC hour (``step=1h``) and must return, per
namespace and GPU model, that hour's value: GPU-hours for GPU-hour sources.
"""

import re

LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
PLACEHOLDER_RE = re.compile(r"\{\{\s*([a-z_]*)\s*\}\}")
PLACEHOLDERS = ("filters", "namespace_label", "model_label")


def escape_label_value(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def label_matchers(filters: dict[str, str]) -> str:
    """``{"cluster": "prod"}`` -> ``cluster="prod",`` (sorted, escaped, comma-terminated)."""
    parts = []
    for name in sorted(filters):
        if not LABEL_NAME_RE.match(name):
            raise ValueError(f"{name!r} is not a Prometheus label name.")
        parts.append(f"{name}={escape_label_value(str(filters[name]))},")
    return "".join(parts)


def render(
    template: str, *, filters: dict[str, str], namespace_label: str, model_label: str
) -> str:
    """The PromQL that ``template`` stands for; raises ``ValueError`` on an unknown
    placeholder so that a typo never reaches Prometheus as literal text."""
    values = {
        "filters": label_matchers(filters),
        "namespace_label": namespace_label,
        "model_label": model_label or namespace_label,
    }

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"Unknown placeholder {{{{{name}}}}}; use {', '.join(PLACEHOLDERS)}.")
        return values[name]

    return PLACEHOLDER_RE.sub(fill, template)
