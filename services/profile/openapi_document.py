"""The profile's OpenAPI document as the API behaves: what Litestar cannot see in the routes, added in one place.

Litestar documents each route from its signature. It does not see the bearer guards (``access.auth``),
the ``Idempotency-Key`` middleware (every POST honours it), the input guard's refusal of NUL, nor that
request bodies refuse unknown fields (msgspec's ``forbid_unknown_fields``); it leaves the rules of list
items out, knows no bound that is a setting, and documents an optional string parameter as "a string or
null" although it is absent or a string. A rule across a body's fields is the struct's ``openapi_rule``.
``finish_document`` states all of that once the app is built.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    Reference,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.routes import HTTPRoute

from libs.kit.openapi import BEARER, BEARER_SCHEME, SECURED, closed_structs, each_operation, roles_note, without_null
from services.profile.access.auth import guard_roles
from services.profile.name_changes.schemas import BatchProfileUpdateRequest
from services.profile.shared.web.examples import PROBLEM_JSON, problem_example
from services.profile.shared.web.idempotency import MAX_KEY_LENGTH
from services.profile.shared.web.input_guard import NO_NUL_PATTERN

IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in="header",
    required=False,
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=MAX_KEY_LENGTH),
    description=(
        "A key of the client's choosing, new for each distinct request: the same key with the same request "
        "replays the first response (`Idempotent-Replayed: true`) instead of repeating its effect; with another "
        "request it is 422 `IDEMPOTENCY_KEY_REUSED`, while the first still runs 409 `IDEMPOTENCY_KEY_IN_USE`. "
        "Kept for `PROFILE_LEDGER_IDEMPOTENCY_TTL_S`."
    ),
)
# What the idempotency middleware answers by itself (a key of the wrong length is 422 VALIDATION).
IDEMPOTENCY_PROBLEMS = ("IDEMPOTENCY_KEY_IN_USE", "IDEMPOTENCY_KEY_REUSED", "VALIDATION", "HTTP_413")


def finish_document(app: Litestar, *, max_batch_size: int, max_outbox_page: int) -> None:
    """Completes ``app``'s document in place (Litestar serves the object it generated once).

    Two bounds are settings: ``max_batch_size`` (``PROFILE_HTTP_MAX_BATCH_SIZE``) bounds a batch of profile
    updates below what its type allows, ``max_outbox_page`` (``PROFILE_RELAY_ADMIN_MAX_PAGE_SIZE``) a page of
    the outbox listing.
    """
    document = app.openapi_schema
    components = document.components if isinstance(document.components, Components) else Components()
    components.security_schemes = {**(components.security_schemes or {}), BEARER: BEARER_SCHEME}
    document.components = components
    _secure_and_close(app, document)
    _setting_bounds(document, max_batch_size, max_outbox_page)
    for _, method, operation in each_operation(document.paths):
        operation.parameters = [_string_not_null(p) for p in operation.parameters or []]
        for parameter in operation.parameters:
            if isinstance(parameter, Parameter) and parameter.param_in != "header":
                _no_nul(parameter.schema)
        if method == "post" and operation.security:
            operation.parameters = [*operation.parameters, IDEMPOTENCY_KEY]
            for code in IDEMPOTENCY_PROBLEMS:
                _add_problem(operation, code)


def _secure_and_close(app: Litestar, document: OpenAPI) -> None:
    """Each guarded operation: the bearer scheme and its roles; each closed body: ``additionalProperties: false``."""
    schemas = document.components.schemas or {} if isinstance(document.components, Components) else {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or (item := (document.paths or {}).get(route.path_format)) is None:
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None)
                if not isinstance(operation, Operation):
                    continue
                if (roles := guard_roles(handler)) is not None:
                    operation.security = SECURED
                    operation.description = "\n\n".join(filter(None, (operation.description, roles_note(roles))))
                body = handler.parsed_fn_signature.parameters.get("data")
                for struct in closed_structs(body.annotation) if body is not None else ():
                    schema = schemas.get(struct.__name__)
                    if schema is None:
                        raise RuntimeError(f"no schema {struct.__name__} in the document for {route.path_format}")
                    schema.additional_properties = False
                    _item_rules(schema, struct)
                    for prop in (schema.properties or {}).values():
                        _no_nul(prop)
                    if isinstance(rule := getattr(struct, "openapi_rule", None), Schema):
                        schema.one_of = rule.one_of  # a rule across fields, stated by the struct


def _setting_bounds(document: OpenAPI, max_batch_size: int, max_outbox_page: int) -> None:
    schemas = document.components.schemas or {} if isinstance(document.components, Components) else {}
    batch = schemas.get(BatchProfileUpdateRequest.__name__)
    ids = batch.properties.get("applicationIds") if isinstance(batch, Schema) and batch.properties else None
    if not isinstance(ids, Schema):
        raise TypeError("no applicationIds schema in the document's BatchProfileUpdateRequest")
    ids.max_items = min(ids.max_items or max_batch_size, max_batch_size)
    outbox = (document.paths or {}).get("/v1/admin/outbox")
    parameters = outbox.get.parameters or [] if outbox is not None and outbox.get is not None else []
    limit = next((p for p in parameters if isinstance(p, Parameter) and p.name == "limit"), None)
    if limit is None or not isinstance(limit.schema, Schema):
        raise TypeError("no limit parameter in the document's GET /v1/admin/outbox")
    limit.schema.maximum = max_outbox_page


def _item_rules(schema: Schema, struct: type[msgspec.Struct]) -> None:
    """The rules of a list's items (an id's length, a number's range), which Litestar leaves out of ``items``."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        lists = [t for t in _branches(field.type) if isinstance(t, msgspec.inspect.ListType)]
        prop = (schema.properties or {}).get(field.encode_name)
        if not lists or not isinstance(prop, Schema):
            continue
        item = lists[0].item_type
        for branch in [prop, *(b for b in prop.one_of or [] if isinstance(b, Schema))]:
            if isinstance(branch.items, Schema) and isinstance(item, msgspec.inspect.StrType):
                branch.items.min_length, branch.items.max_length = item.min_length, item.max_length
                branch.items.pattern = item.pattern
            elif isinstance(branch.items, Schema) and isinstance(item, msgspec.inspect.IntType):
                branch.items.minimum, branch.items.maximum = item.ge, item.le


def _branches(info: msgspec.inspect.Type) -> list[msgspec.inspect.Type]:
    if isinstance(info, msgspec.inspect.Metadata):
        return _branches(info.type)
    return list(info.types) if isinstance(info, msgspec.inspect.UnionType) else [info]


def _no_nul(schema: Schema | Reference | None) -> None:
    """The input guard refuses NUL anywhere (no text column holds it): text without a pattern of its own says so."""
    if not isinstance(schema, Schema):
        return
    plain = schema.pattern is None and schema.format is None and schema.enum is None and schema.const is None
    if schema.type == OpenAPIType.STRING and plain:
        schema.pattern = NO_NUL_PATTERN
    for branch in [*(schema.one_of or []), schema.items]:
        _no_nul(branch if isinstance(branch, Schema) else None)


def _string_not_null(parameter: Parameter | Reference) -> Parameter | Reference:
    """A string parameter is absent or a string: sent as "null", it is the string "null", not a null."""
    if isinstance(parameter, Parameter) and isinstance(parameter.schema, Schema):
        kept = without_null(parameter.schema)
        parameter.schema = kept if kept.type == OpenAPIType.STRING else parameter.schema
    return parameter


def _add_problem(operation: Operation, code: str) -> None:
    """``code``'s problem among the operation's responses (beside those of its status already documented)."""
    example = problem_example(code)
    status = str(example["status"])
    responses = operation.responses if operation.responses is not None else {}
    response = responses.get(status)
    if not isinstance(response, OpenAPIResponse):
        response = OpenAPIResponse(description="", content={PROBLEM_JSON: _problem_media()})
        responses[status] = response
    media = (response.content or {}).get(PROBLEM_JSON)
    if media is None:
        return
    examples: dict[str, Any] = media.examples if isinstance(media.examples, dict) else {}
    if any(isinstance(e, Example) and e.summary == code for e in examples.values()):
        return
    examples[f"problem-{code.lower()}"] = Example(summary=code, value=example)
    media.examples = examples
    response.description = ", ".join(filter(None, (response.description, code)))
    operation.responses = responses


def _problem_media() -> OpenAPIMediaType:
    return OpenAPIMediaType(schema=Reference(ref="#/components/schemas/ProblemDetails"))
