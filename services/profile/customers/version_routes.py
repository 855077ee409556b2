"""A customer's versions over HTTP: the kept versions, one of them, a difference, a rollback (seed 004).

Personal data (contact data, tax number) of past versions is shown only to those who may change it.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter, QueryParameter

from services.profile.access.auth import Principal, Role, requires
from services.profile.customers.version_schemas import (
    DifferenceResponse,
    RollbackRequest,
    RollbackResponse,
    VersionPage,
    VersionResponse,
)
from services.profile.customers.versions import VersionService
from services.profile.domain.versions import MAX_VERSION
from services.profile.shared.results import Actor
from services.profile.shared.web import examples as ex
from services.profile.shared.web.conditional import RequiredIfMatch, required_version, with_etag
from services.profile.shared.web.params import Cursor, Limit, PathId
from services.profile.shared.web.routes import Ok, page_body, page_ok, route

PathVersion = Annotated[int, Parameter(ge=1, le=MAX_VERSION, description="a version of the customer")]
# Who may read personal data (contact data, tax number) of past versions: those who may change it.
PERSONAL_HISTORY_ROLES = (Role.OPERATOR,)
# What an edit of the profile can answer (the PATCH of a customer and a rollback).
PROFILE_EDIT_PROBLEMS = (
    *("PROFILE_NOT_FOUND", "PRECONDITION_FAILED", "CUSTOMER_CODE_EXISTS"),
    *("VALIDATION", "PRECONDITION_REQUIRED", "DATABASE_ERROR"),
)
_VERSION = "/{customer_id:str}/versions/{version:int}"
_VERSION_PROBLEMS = ("PROFILE_NOT_FOUND", "VERSION_NOT_FOUND")


def _reads_personal_history(request: Request[Any, Any, Any]) -> bool:
    principal = request.scope.get("user")
    return isinstance(principal, Principal) and principal.may_act_as(PERSONAL_HISTORY_ROLES)


class CustomerVersionRoutes:
    """The version routes of ``CustomerController`` (under ``/v1/customers``), which inherits them."""

    @route(
        get,
        "/{customer_id:str}/versions",
        requires(Role.VIEWER),
        page_ok(VersionPage, ex.VERSION, "Newest first"),
        "PROFILE_NOT_FOUND",
        "VALIDATION",
    )
    async def list_versions(
        self,
        request: Request[Any, Any, Any],
        customer_id: PathId,
        versions: NamedDependency[VersionService],
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> VersionPage:
        """Every kept version of the customer (also in the recycle bin), newest first, the whole record at each.

        Personal data (contact data, tax number) of past versions is shown to operators and
        admins; a viewer gets it as null, named in ``redactedFields``.
        """
        page = await versions.page(customer_id, cursor, limit)
        personal = _reads_personal_history(request)
        return page_body(VersionPage, page, lambda entry: VersionResponse.of_entry(entry, personal=personal))

    @route(get, _VERSION, requires(Role.VIEWER), Ok(VersionResponse, ex.VERSION, "The version"), *_VERSION_PROBLEMS)
    async def get_version(
        self,
        request: Request[Any, Any, Any],
        customer_id: PathId,
        version: PathVersion,
        versions: NamedDependency[VersionService],
    ) -> VersionResponse:
        return VersionResponse.of_entry(
            await versions.get(customer_id, version), personal=_reads_personal_history(request)
        )

    @route(
        get,
        f"{_VERSION}/difference",
        requires(Role.VIEWER),
        Ok(DifferenceResponse, ex.DIFFERENCE, "Field by field, from this version to `to`"),
        *_VERSION_PROBLEMS,
    )
    async def version_difference(
        self,
        request: Request[Any, Any, Any],
        customer_id: PathId,
        version: PathVersion,
        versions: NamedDependency[VersionService],
        to: Annotated[
            int | None, QueryParameter(ge=1, le=MAX_VERSION, description="the other version (default: the current one)")
        ] = None,
    ) -> DifferenceResponse:
        """What differs from ``version`` to ``to``: a viewer sees *that* personal data changed, not its values."""
        comparison = await versions.compare(customer_id, version, to)
        return DifferenceResponse.of(comparison, personal=_reads_personal_history(request))

    @route(
        post,
        "/{customer_id:str}/rollback",
        requires(Role.OPERATOR),
        Ok(
            RollbackResponse,
            ex.ROLLBACK,
            "Rolled back (or, in a dry run, what would change); ETag = the current version",
        ),
        *PROFILE_EDIT_PROBLEMS,
        "VERSION_NOT_FOUND",  # one more 404: listed after PROFILE_NOT_FOUND all the same
    )
    async def rollback_customer(
        self,
        customer_id: PathId,
        data: Annotated[RollbackRequest, ex.body("back to version 2", {"toVersion": 2, "reason": "错误的批量修改"})],
        versions: NamedDependency[VersionService],
        actor: NamedDependency[Actor],
        if_match: RequiredIfMatch = None,
    ) -> Response[RollbackResponse]:
        """A new version whose content equals ``toVersion`` (recycle-bin state included); ``If-Match`` required.

        Forward like a restore: the version number grows. A name that changes takes the path
        of every rename (name history, a completed application of origin ``version_rollback``,
        a ``customer.profile.name-changed.v1`` event to the external systems). Written with
        its operation-log entry in one transaction. ``dryRun`` returns the difference only.
        """
        result = await versions.rollback(
            customer_id, data.to_version, required_version(if_match), actor, dry_run=data.dry_run, reason=data.reason
        )
        return with_etag(RollbackResponse.of(result))
