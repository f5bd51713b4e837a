"""The error answers every API operation may give, documented once for the whole schema.

DRF and :mod:`core.api_errors` answer errors the same way on every endpoint, so rather
than repeating ``extend_schema(responses=...)`` on each view, a drf-spectacular
postprocessing hook adds them from what the operation offers:

- 401 where the operation names a security scheme (a missing or wrong token);
- 403 on writes (model permissions, department membership);
- 400 where there is input to refuse: a request body, or query parameters other than
  pagination, ordering and the output format;
- 404 where the path names an object, and where a page number or an output format may name
  one that does not exist;
- 406 everywhere: an ``Accept`` header that names none of the operation's media types;
- 409 on writes (a deletion blocked by objects still referring to the target, or a
  constraint broken by a concurrent write);
- 415 where there is a request body: one in a media type the API does not read;
- 429 where the view has throttles (the rate limits of :mod:`core.ratelimits`).

An answer a view documents itself keeps its description; it gains the error body when it
has none. Error bodies are JSON, except where the operation renders CSV: asked for CSV,
it says the same as a CSV table (binary formats answer errors as JSON, see
:func:`core.api.error_as_json`).
"""

from http import HTTPStatus

ERROR = "Error"
VALIDATION_ERROR = "ValidationError"
ERROR_SCHEMAS = {
    ERROR: {
        "type": "object",
        "description": "Why the request was refused.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    VALIDATION_ERROR: {
        "type": "object",
        "description": "The errors of each field under its name (nested for lists and "
        "objects), those of the request as a whole under `non_field_errors`, or `detail` "
        "when the request could not be read at all.",
        "additionalProperties": {},
    },
}
WRITES = {"post", "put", "patch", "delete"}
# Query parameters that never make a 400: DRF ignores what it does not understand in them.
LENIENT_QUERY = {"page", "page_size", "ordering", "format"}
# Query parameters that may name something that does not exist: 404.
NAMING_QUERY = {"page", "format"}
DESCRIPTIONS = {
    400: "Invalid input.",
    401: "Authentication credentials were not provided or are not valid.",
    403: "You do not have permission to perform this action.",
    404: "Not found, or not among the objects you can see.",
    406: "The Accept header names no media type this operation renders.",
    409: "In use by other objects, or in conflict with a concurrent change.",
    415: "The request body is in a media type the API does not read (JSON, or a form).",
    429: "Too many requests: try again after the seconds `Retry-After` gives.",
}


def _throttled(generator) -> set[tuple[str, str]]:
    """(path, method) of the operations whose view has throttles."""
    throttled = set()
    for path, _regex, method, callback in generator.endpoints or []:
        view = generator.create_view(callback, method)
        if view.get_throttles():
            throttled.add((generator.coerce_path(path, method, view), method.lower()))
    return throttled


def _error_codes(method: str, operation: dict, *, throttled: bool) -> list[int]:
    parameters = operation.get("parameters", [])
    query = {p["name"] for p in parameters if p["in"] == "query"}
    codes = []
    if "requestBody" in operation or query - LENIENT_QUERY:
        codes.append(400)
    if operation.get("security"):
        codes.append(401)
    if method in WRITES:
        codes.append(403)
    if any(p["in"] == "path" for p in parameters) or query & NAMING_QUERY:
        codes.append(404)
    codes.append(406)
    if method in WRITES:
        codes.append(409)
    if "requestBody" in operation:
        codes.append(415)
    if throttled:
        codes.append(429)
    return codes


def _answers_csv(operation: dict) -> bool:
    """Whether the operation renders CSV (its answers, errors included, with ?format=csv)."""
    if any(
        "text/csv" in response.get("content", {})
        for response in operation.get("responses", {}).values()
    ):
        return True
    return any(
        parameter["in"] == "query"
        and parameter["name"] == "format"
        and "csv" in parameter.get("schema", {}).get("enum", [])
        for parameter in operation.get("parameters", [])
    )


def _error_content(code: int, *, csv: bool) -> dict:
    name = VALIDATION_ERROR if code == 400 else ERROR
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
    if csv:
        content["text/csv"] = {
            "schema": {"type": "string", "description": "The same error, as a CSV table."}
        }
    return content


def document_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: see the module's docstring."""
    throttled = _throttled(generator)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            codes = _error_codes(method, operation, throttled=(path, method) in throttled)
            csv = _answers_csv(operation)
            for code in codes:
                documented = responses.setdefault(
                    str(code), {"description": DESCRIPTIONS.get(code, HTTPStatus(code).phrase)}
                )
                documented.setdefault("content", _error_content(code, csv=csv))
    result.setdefault("components", {}).setdefault("schemas", {}).update(ERROR_SCHEMAS)
    return result
