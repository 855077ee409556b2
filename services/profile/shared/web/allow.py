"""``OPTIONS`` answers ``Allow`` with every method of its route.

Litestar makes a route's OPTIONS handler when the route is first built and, when it merges later
handlers of the same path into a new route, keeps that handler, which still lists the methods of
the first one (``Allow: DELETE, OPTIONS`` on a path that also has GET and PATCH). Pointing each
OPTIONS handler at its final route makes ``Allow`` name them all, as 405 answers already do.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute

_LITESTAR_OPTIONS = "options_handler"  # the name of the handler HTTPRoute.create_options_handler makes


def point_options_at_their_routes(app: Litestar) -> None:
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            fn = handler.fn
            if handler.http_methods == {"OPTIONS"} and fn.__name__ == _LITESTAR_OPTIONS and fn.__closure__:
                for cell in fn.__closure__:
                    if isinstance(cell.cell_contents, HTTPRoute):
                        cell.cell_contents = route
