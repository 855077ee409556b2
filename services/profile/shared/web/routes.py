"""One call declares a route: method, path, who may call it, its success answer and the problems it can answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from litestar import Controller, Response
from litestar.handlers import HTTPRouteHandler
from litestar.types import Guard

from services.profile.shared.pagination import Page
from services.profile.shared.web.examples import page_of, responses

# ``get``, ``post``, ``patch`` or ``delete`` from ``litestar``.
Method = Callable[..., HTTPRouteHandler]
_Item = TypeVar("_Item")
_Shown = TypeVar("_Shown")
_Body = TypeVar("_Body")


class Routes(Controller):
    """A controller whose path and OpenAPI tag its class line names: ``class X(Routes, path=..., tag=...)``."""

    def __init_subclass__(cls, *, path: str, tag: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.path = path
        cls.tags = [tag]


class Ok(NamedTuple):
    """The success response: its body type, an example of it, what it is, and its status."""

    container: Any
    example: Any
    description: str
    status: int = 200


def page_ok(container: Any, item_example: dict[str, Any], description: str) -> Ok:
    """A page of a listing (``items`` and ``nextCursor``), with one item as the example."""
    return Ok(container, page_of(item_example), description)


def route(method: Method, path: str, guard: Guard, ok: Ok, *problems: str) -> HTTPRouteHandler:
    """``method`` at ``path`` behind ``guard``, documented with ``ok`` and ``problems`` (and those of every route)."""
    return method(
        path,
        guards=[guard],
        status_code=ok.status,
        responses=responses(ok.status, ok.container, ok.example, ok.description, *problems),
    )


def page_body(
    body: Callable[[list[_Shown], str | None], _Body], page: Page[_Item], show: Callable[[_Item], _Shown]
) -> _Body:
    """A page of a listing as its response body: each item shown, the cursor passed on."""
    return body([show(item) for item in page.items], page.next_cursor)


def created(body: _Body, location: str, headers: dict[str, str] | None = None) -> Response[_Body]:
    """201 with the new resource's address in ``Location`` (and any other ``headers``)."""
    return Response(body, status_code=201, headers={**(headers or {}), "Location": location})
