"""Name-change applications and profile updates (DESIGN.md contract table, seed 000 5.2.1)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from services.profile.access.auth import Role, actor_of, requires
from services.profile.domain.errors import InvalidInput
from services.profile.domain.model import ApplicationOrigin, ApplicationStatus, NameChangeApplication
from services.profile.name_changes.schemas import (
    ApplicationPage,
    ApplicationResponse,
    BatchProfileUpdateRequest,
    DecisionRequest,
    ProfileUpdateRequest,
    SubmitApplicationRequest,
)
from services.profile.name_changes.service import NameChangeService
from services.profile.shared.ports import ApplicationFilter
from services.profile.shared.results import Actor, BatchItemResult, UpdateResult
from services.profile.shared.web import examples as ex
from services.profile.shared.web.params import Cursor, Limit, PathId, instant, time_query
from services.profile.shared.web.routes import Ok, Routes, created, page_body, page_ok, route

_READERS = requires(Role.VIEWER, Role.AUDIT_SYSTEM)
_UPDATERS = requires(Role.AUDIT_SYSTEM, Role.ADMIN)
# What running an approved application's profile update can answer (an approval runs it too).
_UPDATE_PROBLEMS = ("APPLICATION_NOT_FOUND", "INVALID_STATUS", "CONCURRENCY_CONFLICT", "UNEXPECTED_ERROR")


class ApplicationController(Routes, path="/v1/name-change-applications", tag="name-change applications"):
    @route(
        post,
        "/",
        requires(Role.OPERATOR),
        Ok(ApplicationResponse, ex.APPLICATION, "Pending", 201),
        "PROFILE_NOT_FOUND",
        "VALIDATION",
        "DATABASE_ERROR",
    )
    async def submit(
        self,
        data: Annotated[
            SubmitApplicationRequest,
            ex.body("a change of account holder", {"customerId": "C2025001", "newName": "李四", "reason": "过户"}),
        ],
        name_changes: NamedDependency[NameChangeService],
        actor: NamedDependency[Actor],
    ) -> Response[ApplicationResponse]:
        """Records ``oldName`` and ``profileVersion``. Several pending applications per customer are
        accepted; the first approved one wins, later approvals fail with CONCURRENCY_CONFLICT."""
        application = await name_changes.submit(data.customer_id, data.new_name, data.reason, actor)
        return created(ApplicationResponse.of(application), f"{self.path}/{application.application_id}")

    @route(get, "/", _READERS, page_ok(ApplicationPage, ex.APPLICATION, "A page"), "VALIDATION")
    async def list_applications(
        self,
        *,
        name_changes: NamedDependency[NameChangeService],
        status: Annotated[ApplicationStatus | None, QueryParameter()] = None,
        customer_id: Annotated[str | None, QueryParameter(name="customerId", max_length=64)] = None,
        origin: Annotated[ApplicationOrigin | None, QueryParameter()] = None,
        created_from: Annotated[str | None, time_query("from", "created at or after")] = None,
        created_to: Annotated[str | None, time_query("to", "created before")] = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> ApplicationPage:
        """Newest first, with a stable cursor."""
        filters = ApplicationFilter(
            status, customer_id, origin, instant(created_from, "from"), instant(created_to, "to")
        )
        return page_body(ApplicationPage, await name_changes.page(filters, cursor, limit), ApplicationResponse.of)

    @route(
        get,
        "/{application_id:str}",
        _READERS,
        Ok(ApplicationResponse, ex.APPLICATION, "The application"),
        "APPLICATION_NOT_FOUND",
    )
    async def get_application(
        self, application_id: PathId, name_changes: NamedDependency[NameChangeService]
    ) -> ApplicationResponse:
        return ApplicationResponse.of(await name_changes.get(application_id))

    @route(
        post,
        "/{application_id:str}/decision",
        requires(Role.AUDIT_SYSTEM),
        Ok(
            UpdateResult | ApplicationResponse,
            ex.UPDATE_RESULT,
            "Approved: the UpdateResult; rejected: the application",
        ),
        *_UPDATE_PROBLEMS,
        "VALIDATION",
        "DATABASE_ERROR",
    )
    async def decide(
        self,
        application_id: PathId,
        data: Annotated[
            DecisionRequest,
            ex.body("approval", {"decision": "approved", "auditorId": "auditor-1", "comment": "材料齐全"}),
        ],
        name_changes: NamedDependency[NameChangeService],
        request: Request[Any, Any, Any],
    ) -> UpdateResult | ApplicationResponse:
        """Approval runs the profile update in the same transaction and returns the UpdateResult."""
        # The actor read here, not as a second dependency: Litestar resolves two dependencies of one
        # handler in an anyio task group, ~10% of an approval's CPU.
        actor = actor_of(request)
        outcome = await name_changes.decide(application_id, data.decision, data.auditor_id, data.comment, actor)
        if isinstance(outcome, NameChangeApplication):
            return ApplicationResponse.of(outcome)
        return outcome

    @route(
        post,
        "/{application_id:str}/reapply",
        requires(Role.OPERATOR),
        Ok(
            ApplicationResponse,
            {**ex.APPLICATION, "profileVersion": 5, "oldName": "王五"},
            "Pending again, re-based on the current profile",
        ),
        "APPLICATION_NOT_FOUND",
        "INVALID_STATUS",
        "PROFILE_NOT_FOUND",
        "VALIDATION",
    )
    async def reapply(
        self, application_id: PathId, name_changes: NamedDependency[NameChangeService], actor: NamedDependency[Actor]
    ) -> ApplicationResponse:
        """Re-apply an ``update_failed`` application: it takes the current name and profile version as
        ``oldName`` / ``profileVersion`` and goes back to ``pending`` for a new audit decision."""
        return ApplicationResponse.of(await name_changes.reapply(application_id, actor))


class ProfileUpdateController(Routes, path="/v1/profile-updates", tag="profile updates"):
    @route(
        post,
        "/",
        _UPDATERS,
        Ok(UpdateResult, ex.UPDATE_RESULT, "The update result (the first one when repeated)"),
        *_UPDATE_PROBLEMS,
        "DATABASE_ERROR",
    )
    async def run_update(
        self,
        data: Annotated[
            ProfileUpdateRequest, ex.body("one application", {"applicationId": ex.APPLICATION["applicationId"]})
        ],
        name_changes: NamedDependency[NameChangeService],
        request: Request[Any, Any, Any],
    ) -> UpdateResult:
        return await name_changes.update(data.application_id, actor_of(request))  # one dependency, as decide

    @route(
        post,
        "/batch",
        _UPDATERS,
        Ok(
            dict[str, list[BatchItemResult]],
            {
                "results": [
                    {"applicationId": ex.APPLICATION["applicationId"], "success": True, "result": ex.UPDATE_RESULT},
                    {"applicationId": "APP-x", "success": False, "errorCode": "APPLICATION_NOT_FOUND"},
                ]
            },
            "One result per application, in order",
        ),
        "VALIDATION",
    )
    async def run_batch(
        self,
        data: Annotated[
            BatchProfileUpdateRequest,
            ex.body("two applications", {"applicationIds": [ex.APPLICATION["applicationId"], "APP-x"]}),
        ],
        name_changes: NamedDependency[NameChangeService],
        actor: NamedDependency[Actor],
        max_batch_size: NamedDependency[int],
    ) -> dict[str, list[BatchItemResult]]:
        """One transaction per application, at most ``PROFILE_HTTP_MAX_BATCH_SIZE`` ids."""
        if len(data.application_ids) > max_batch_size:
            message = f"at most {max_batch_size} application ids per batch"
            raise InvalidInput(message, errors=[{"key": "applicationIds", "message": message, "source": "body"}])
        return {"results": await name_changes.update_batch(data.application_ids, actor)}
