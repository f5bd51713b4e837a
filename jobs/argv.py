"""A job kind's argv template, its parameters' JSON schema, and the argv of one job.

The rules that keep a parameter from becoming a command:

- the argv is a list handed to ``subprocess`` as is, never to a shell;
- a placeholder names one parameter (``{text}``) or a value the worker provides
  (``{output_dir}``, ``{job_id}``, ``{python}``); no attribute access, indexing or format
  specification, so a template cannot reach into Python objects;
- parameters are validated against the kind's JSON schema first (types, enums, bounds,
  no unknown keys, no NUL characters);
- a parameter that makes up a whole argument may not start with ``-``, so it can never be
  read as an option of the command.
"""

import string
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

BUILTINS = ("output_dir", "job_id", "python")
SCALAR_TYPES = ("string", "integer", "number", "boolean")
_formatter = string.Formatter()


def _fields(element: str) -> list[tuple[str, str]]:
    """``(literal text, field name)`` pairs of a template element; raises ValueError on a
    malformed one (an unmatched brace)."""
    pairs = []
    for literal, field, spec, conversion in _formatter.parse(element):
        if field is not None and (spec or conversion or not field.isidentifier()):
            raise ValueError(
                f"“{{{field}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}” is not a plain placeholder; write {{name}}."
            )
        pairs.append((literal, field))
    return pairs


def validate_argv_template(value) -> None:
    if (
        not isinstance(value, list)
        or not value
        or any(not isinstance(element, str) or not element for element in value)
    ):
        raise ValidationError(
            'Give the command as a list of non-empty strings, for example ["ffmpeg", "-i", '
            '"{input}"].'
        )
    for element in value:
        try:
            _fields(element)
        except ValueError as exc:
            raise ValidationError(f"In “{element}”: {exc}") from exc
    first = _fields(value[0])
    if any(field is not None for _, field in first) and first != [("", "python")]:
        raise ValidationError("The program (the first element) must be fixed, or exactly {python}.")


def validate_params_schema(schema) -> None:
    """The schema is valid JSON schema describing a flat object of scalar parameters."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ValidationError('The schema must describe an object: {"type": "object", ...}.')
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValidationError(f"Not a valid JSON schema: {exc.message}") from exc
    properties = schema.get("properties", {})
    for name, spec in properties.items():
        if not name.isidentifier():
            raise ValidationError(f"Parameter names are identifiers; “{name}” is not.")
        if name in BUILTINS:
            raise ValidationError(f"“{name}” is provided by the worker; pick another name.")
        if not isinstance(spec, dict) or spec.get("type") not in SCALAR_TYPES:
            raise ValidationError(
                f"Parameter “{name}” needs a type out of {', '.join(SCALAR_TYPES)}."
            )
    unknown = set(schema.get("required", [])) - set(properties)
    if unknown:
        raise ValidationError(f"Required but not described: {', '.join(sorted(unknown))}.")
    if schema.get("additionalProperties", True) is not False:
        raise ValidationError(
            'Add "additionalProperties": false: a job takes only the parameters its schema '
            "describes."
        )
    for name, spec in properties.items():
        if "default" in spec:
            errors = list(Draft202012Validator(spec).iter_errors(spec["default"]))
            if errors:
                raise ValidationError(
                    f"The default of “{name}” does not fit its own schema: {errors[0].message}."
                )


def validate_placeholders(template: list[str], schema: dict) -> None:
    """Every placeholder names a built-in or a parameter that always has a value (it is
    required or has a default). A malformed element is left to
    :func:`validate_argv_template`, which names it."""
    try:
        used = {field for element in template for _, field in _fields(element) if field}
    except ValueError:
        return
    properties = schema.get("properties", {})
    unknown = used - set(properties) - set(BUILTINS)
    if unknown:
        raise ValidationError(
            f"The template uses {', '.join(sorted(unknown))}, which the schema does not describe."
        )
    required = set(schema.get("required", []))
    optional = sorted(
        name
        for name in used & set(properties)
        if name not in required and "default" not in properties[name]
    )
    if optional:
        raise ValidationError(
            f"{', '.join(optional)} may be left out, so the command would miss it: make it "
            "required or give it a default."
        )


def params_validate(schema: dict, params) -> dict:
    """``params`` checked against ``schema``, with the schema's defaults filled in.

    Raises ValidationError with one message per parameter (keyed by its name, or
    ``params`` for errors of the whole object).
    """
    if not isinstance(params, dict):
        raise ValidationError({"params": ["Give the parameters as an object."]})
    values = {
        name: spec["default"]
        for name, spec in schema.get("properties", {}).items()
        if isinstance(spec, dict) and "default" in spec
    }
    values.update(params)
    errors: dict[str, list[str]] = {}
    properties = schema.get("properties", {})
    for error in sorted(Draft202012Validator(schema).iter_errors(values), key=str):
        if error.validator == "required":
            for name in schema.get("required", []):
                if name not in values:
                    errors.setdefault(name, []).append("This parameter is required.")
        elif error.validator == "additionalProperties":
            for name in values:
                if name not in properties:
                    errors.setdefault(name, []).append("Unknown parameter.")
        else:
            field = str(error.path[0]) if error.path else "params"
            errors.setdefault(field, []).append(_message(error))
    for name, value in values.items():
        if isinstance(value, str) and "\x00" in value:
            errors.setdefault(name, []).append("Contains a NUL character.")
    if errors:
        raise ValidationError(errors)
    return values


def _message(error) -> str:
    return error.message


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(template: list[str], params: Mapping, *, builtins: Mapping[str, str]) -> list[str]:
    """The argv of one job: each element of ``template`` with its placeholders replaced.

    Raises ValidationError when a parameter that makes up a whole argument starts with
    ``-`` (it would be read as an option).
    """
    values = {**{k: _text(v) for k, v in params.items()}, **builtins}
    argv = []
    for element in template:
        parts = _fields(element)
        missing = [field for _, field in parts if field and field not in values]
        if missing:
            raise ValidationError({missing[0]: ["This parameter has no value."]})
        rendered = "".join(literal + (values[field] if field else "") for literal, field in parts)
        # An argument that starts with a parameter could be read as an option if the
        # value starts with "-" (a number is a number: -5 stays allowed).
        leading = parts[0][1] if parts[0][0] == "" else None
        if leading not in (None, *BUILTINS) and rendered.startswith("-"):
            value = params.get(leading)
            if not (isinstance(value, int | float) and not isinstance(value, bool)):
                raise ValidationError(
                    {leading: ["May not start with “-”: it would be read as an option."]}
                )
        argv.append(rendered)
    return argv
