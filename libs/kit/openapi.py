"""What the services' OpenAPI documents share: the bearer scheme, role notes, and fixes of what Litestar generates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
from litestar.openapi.spec import Operation, PathItem, Schema, SecurityScheme

from libs.kit.tokens import Role, effective_roles

BEARER = "bearer"  # the security scheme's name in the documents
SECURED: list[dict[str, list[str]]] = [{BEARER: []}]
BEARER_SCHEME = SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def roles_note(roles: frozenset[Role]) -> str:
    """The roles a guard admits, those that imply one of ``roles`` included, as an operation's description says."""
    admitted = sorted(role for role in Role if not effective_roles(frozenset({role})).isdisjoint(roles))
    return f"Roles: {', '.join(admitted)} (bearer token; 401 without a valid one, 403 without the role)."


def operations(path_item: PathItem) -> list[Operation]:
    return [operation for method in METHODS if isinstance(operation := getattr(path_item, method, None), Operation)]


def each_operation(paths: dict[str, PathItem] | None) -> Iterator[tuple[str, str, Operation]]:
    """``(path, method, operation)`` for every operation of a document's ``paths``."""
    for path, item in (paths or {}).items():
        for method in METHODS:
            if isinstance(operation := getattr(item, method, None), Operation):
                yield path, method, operation


def without_null(schema: Schema) -> Schema:
    """``oneOf: [X, null]`` with constraints beside it, as X with them (a parameter is absent, not null)."""
    branches = [branch for branch in schema.one_of or [] if isinstance(branch, Schema) and branch.type != "null"]
    if schema.one_of is None or len(branches) != 1 or len(schema.one_of) != len(branches) + 1:
        return schema
    (kept,) = branches
    merged = {k: v for k, v in vars(schema).items() if v is not None and k != "one_of"}
    for key, value in vars(kept).items():
        if value is not None:
            merged.setdefault(key, value)
    return Schema(**merged)


def closed_structs(annotation: Any) -> set[type[msgspec.Struct]]:
    """The structs in a body's type, nested ones included, that refuse unknown fields (``forbid_unknown_fields``)."""
    found: set[type[msgspec.Struct]] = set()
    pending: list[msgspec.inspect.Type] = [msgspec.inspect.type_info(annotation)]
    seen: set[int] = set()
    while pending:
        info = pending.pop()
        if id(info) in seen:
            continue
        seen.add(id(info))
        if isinstance(info, msgspec.inspect.StructType):
            if info.forbid_unknown_fields:
                found.add(info.cls)
            pending.extend(field.type for field in info.fields)
        elif isinstance(info, msgspec.inspect.Metadata):
            pending.append(info.type)
        elif isinstance(info, msgspec.inspect.UnionType):
            pending.extend(info.types)
        elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)):
            pending.append(info.item_type)
        elif isinstance(info, msgspec.inspect.DictType):
            pending.append(info.value_type)
    return found
