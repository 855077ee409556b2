"""Path and query parameters every listing and item route shares."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter, QueryParameter

from services.profile.shared.pagination import MAX_PAGE_SIZE

PathId = Annotated[str, Parameter(max_length=64)]
Cursor = Annotated[str | None, QueryParameter(max_length=512, description="`nextCursor` of the previous page")]
Limit = Annotated[int | None, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description=f"page size, at most {MAX_PAGE_SIZE}")]
