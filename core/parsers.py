"""How the API reads the JSON clients send: DRF's parser and serializer field, with the
nesting bounded.

Python's JSON decoder recurses once per level of arrays and objects, so a body of a few
kilobytes nested a thousand deep (``[[[[…]]]]``) raises ``RecursionError``, which DRF
does not turn into a 400. No request to this API needs more than a few levels: a job's
``params`` is a flat object of scalars (depth 2 in its body), and the deepest definition
the portal holds, a job kind with an enum in its ``params_schema``, is 5 deep. Anything
deeper than :data:`MAX_JSON_DEPTH` is refused as malformed, with the limit named.
"""

from django import forms
from django.core.exceptions import ValidationError
from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError

# Several times what any request needs, and far below the decoder's recursion limit.
MAX_JSON_DEPTH = 32
TOO_DEEP = (
    f"Arrays and objects nested deeper than {MAX_JSON_DEPTH} levels; no request to this "
    "API needs more than a few."
)


def json_depth(value, *, limit: int | None = None) -> int:
    """How many levels of arrays and objects ``value`` nests (0 for a scalar, 1 for
    ``[]``). Counted without recursion, so a value of any depth is measured; stops early,
    with a depth above ``limit``, once ``limit`` is passed."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if limit is not None and deepest > limit:
            break
        pending.extend((child, depth + 1) for child in children)
    return deepest


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a body nested deeper than :data:`MAX_JSON_DEPTH` is a
    ``ParseError`` (400), as is one too deep for the decoder itself."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - {TOO_DEEP}") from None
        if json_depth(data, limit=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise ParseError(f"JSON parse error - {TOO_DEEP}")
        return data


class JSONField(serializers.JSONField):
    """DRF's JSON field, with the parser's nesting limit. Form data carries the value as
    JSON text that the field decodes itself, where :class:`JSONParser` never sees it."""

    def to_internal_value(self, data):
        try:
            value = super().to_internal_value(data)
        except RecursionError:
            raise serializers.ValidationError(TOO_DEEP, code="too_deep") from None
        if json_depth(value, limit=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise serializers.ValidationError(TOO_DEEP, code="too_deep")
        return value


class JSONFormField(forms.JSONField):
    """Django's form JSON field (the admin's), with the same nesting limit: a value too
    deep is a field error, not a ``RecursionError``."""

    def to_python(self, value):
        try:
            converted = super().to_python(value)
        except RecursionError:
            raise ValidationError(TOO_DEEP, code="invalid") from None
        if json_depth(converted, limit=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise ValidationError(TOO_DEEP, code="invalid")
        return converted

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)
