"""HTTP bodies of backups and restores."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from services.profile.shared.ports import BackupPoint
from services.profile.shared.web.schemas import (
    CustomerId,
    Request,
)

Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class CreateBackupRequest(Request, frozen=True):
    label: Label | None = None


class RestoreRequest(Request, frozen=True):
    """Restore one customer (``customerId``) or the whole ledger; ``dryRun`` only reports differences."""

    customer_id: CustomerId | None = None
    dry_run: bool = False


class BackupResponse(msgspec.Struct, rename="camel", frozen=True):
    backup_id: str
    kind: str
    label: str | None
    created_by: str
    created_at: datetime
    customer_count: int
    deleted_count: int

    @classmethod
    def of(cls, point: BackupPoint) -> BackupResponse:
        fields = msgspec.structs.asdict(point)
        return cls(**{**fields, "kind": point.kind.value})


class BackupPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[BackupResponse]
    next_cursor: str | None
