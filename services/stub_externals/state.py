"""The stub's in-memory behaviour: idempotency, per-customer versions, faults.

Pure and synchronous on purpose: aiohttp runs handlers on one event loop, so a
decision taken without an ``await`` in between is atomic.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

# Path -> system code; the three seed endpoints served by one process.
SYSTEM_BY_PATH: dict[str, str] = {
    "/api/customer/update": "CRM",
    "/api/profile/sync": "CMS",
    "/api/customer/profile": "CSS",
}
SYSTEM_CODES = frozenset(SYSTEM_BY_PATH.values())


class FaultMode(StrEnum):
    STATUS = "status"
    LATENCY = "latency"
    DOWN = "down"


class Fault(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """One injected fault; applies to the next ``count`` calls, or to every call when ``count`` is None."""

    system: str
    mode: FaultMode
    status: int = 503
    latency_ms: int = 0
    count: int | None = None

    def __post_init__(self) -> None:
        if self.system not in SYSTEM_CODES:
            msg = f"unknown system {self.system!r}, expected one of {sorted(SYSTEM_CODES)}"
            raise ValueError(msg)
        if self.count is not None and self.count < 1:
            msg = "count must be at least 1 (omit it for a permanent fault)"
            raise ValueError(msg)


class SyncBody(msgspec.Struct, frozen=True, rename="camel"):
    """What the connector sends to every external system."""

    event_id: str
    customer_id: str
    application_id: str
    customer_name: str
    old_name: str
    profile_version: int
    reason: str
    changed_at: str


class StubReply(msgspec.Struct, frozen=True):
    status: int
    body: dict[str, Any]


class ReceivedCall(msgspec.Struct, frozen=True):
    system: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int


class StubState:
    def __init__(self) -> None:
        # Faults queue per system: the first one applies; a counted fault is
        # dropped once used up, so "503 twice, then slow" can be scripted.
        self._faults: dict[str, list[Fault]] = {}
        self._replies: dict[tuple[str, str], StubReply] = {}
        self._applied_versions: dict[tuple[str, str], int] = {}
        self._received: list[ReceivedCall] = []

    def add_fault(self, fault: Fault) -> None:
        self._faults.setdefault(fault.system, []).append(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def reset(self) -> None:
        self._faults.clear()
        self._replies.clear()
        self._applied_versions.clear()
        self._received.clear()

    def take_fault(self, system: str) -> Fault | None:
        """The fault for this call, counting it as used."""
        queue = self._faults.get(system)
        if not queue:
            return None
        fault = queue[0]
        if fault.count is not None:
            remaining = fault.count - 1
            if remaining == 0:
                queue.pop(0)
            else:
                queue[0] = msgspec.structs.replace(fault, count=remaining)
        return fault

    def received(self, system: str | None = None) -> list[ReceivedCall]:
        return [call for call in self._received if system is None or call.system == system]

    def apply(
        self, system: str, path: str, key: str, *, headers: dict[str, str], body: SyncBody, raw: Any
    ) -> StubReply:
        """Apply one call: a repeated key replays its first reply and is not recorded again."""
        if (replay := self._replies.get((system, key))) is not None:
            return replay
        version_key = (system, body.customer_id)
        current = self._applied_versions.get(version_key)
        if current is not None and body.profile_version <= current:
            reply = StubReply(409, {"currentVersion": current})
        else:
            self._applied_versions[version_key] = body.profile_version
            reply = StubReply(200, {"applied": True, "version": body.profile_version})
        self._replies[(system, key)] = reply
        self._received.append(ReceivedCall(system, path, headers, raw, reply.status))
        return reply
