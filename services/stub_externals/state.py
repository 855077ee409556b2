"""The stub's in-memory behaviour: idempotency, per-customer versions, faults.

Pure and synchronous on purpose: aiohttp runs handlers on one event loop, so a
decision taken without an ``await`` in between is atomic.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

from contracts.external_systems import SYSTEM_PATHS, ExternalSyncRequest

# Path -> system code; the three seed endpoints served by one process.
SYSTEM_BY_PATH: dict[str, str] = {path: code for code, path in SYSTEM_PATHS.items()}
SYSTEM_CODES = frozenset(SYSTEM_BY_PATH.values())


class FaultMode(StrEnum):
    STATUS = "status"
    LATENCY = "latency"
    DOWN = "down"


class Fault(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """One injected fault; applies to the next ``count`` calls, or to every call when ``count`` is None.

    With ``customer_id`` it applies only to calls for that customer (a poison event, a slow key).
    """

    system: str
    mode: FaultMode
    status: int = 503
    latency_ms: int = 0
    count: int | None = None
    customer_id: str | None = None

    def __post_init__(self) -> None:
        if self.system not in SYSTEM_CODES:
            msg = f"unknown system {self.system!r}, expected one of {sorted(SYSTEM_CODES)}"
            raise ValueError(msg)
        if self.count is not None and self.count < 1:
            msg = "count must be at least 1 (omit it for a permanent fault)"
            raise ValueError(msg)


class StubReply(msgspec.Struct, frozen=True):
    status: int
    body: dict[str, Any]


class ReceivedCall(msgspec.Struct, frozen=True):
    system: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int


class SystemStats(msgspec.Struct, rename="camel"):
    """What one system saw; ``applied_keys`` counts distinct Idempotency-Keys it applied (2xx)."""

    applied_keys: int = 0
    conflicts: int = 0  # distinct keys answered 409 (the system held that version or a newer one)
    duplicate_calls: int = 0  # repeated keys, absorbed: the first reply replayed, nothing applied again
    faulted_calls: int = 0  # calls answered by an injected fault
    # Calls that arrived while another call with the same key was still being handled: a client
    # that keeps "one call in flight per key" never causes one.
    overlapping_calls: int = 0


class CustomerState(msgspec.Struct, frozen=True, rename="camel"):
    """What a system holds for one customer: the last applied version and name."""

    profile_version: int
    customer_name: str


class StubState:
    def __init__(self) -> None:
        # Faults queue per system: the first one applies; a counted fault is
        # dropped once used up, so "503 twice, then slow" can be scripted.
        self._faults: dict[str, list[Fault]] = {}
        self._replies: dict[tuple[str, str], StubReply] = {}
        self._applied: dict[tuple[str, str], CustomerState] = {}
        self._received: list[ReceivedCall] = []
        self._stats: dict[str, SystemStats] = {code: SystemStats() for code in sorted(SYSTEM_CODES)}
        self._in_flight: dict[tuple[str, str], int] = {}

    def add_fault(self, fault: Fault) -> None:
        self._faults.setdefault(fault.system, []).append(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def reset(self) -> None:
        self._faults.clear()
        self._replies.clear()
        self._applied.clear()
        self._received.clear()
        self._stats = {code: SystemStats() for code in sorted(SYSTEM_CODES)}

    def call_started(self, system: str, key: str) -> None:
        in_flight = self._in_flight.get((system, key), 0)
        if in_flight:
            self._stats[system].overlapping_calls += 1
        self._in_flight[(system, key)] = in_flight + 1

    def call_ended(self, system: str, key: str) -> None:
        remaining = self._in_flight.pop((system, key), 1) - 1
        if remaining:
            self._in_flight[(system, key)] = remaining

    def stats(self) -> dict[str, SystemStats]:
        return {code: msgspec.structs.replace(stats) for code, stats in self._stats.items()}

    def customers(self, system: str) -> dict[str, CustomerState]:
        """Every customer's state at one system."""
        return {customer: state for (code, customer), state in self._applied.items() if code == system}

    def take_fault(self, system: str, customer_id: str | None) -> Fault | None:
        """The first fault for this call (system, customer), counting it as used."""
        queue = self._faults.get(system, [])
        index = next(
            (i for i, f in enumerate(queue) if f.customer_id is None or f.customer_id == customer_id),
            None,
        )
        if index is None:
            return None
        fault = queue[index]
        self._stats[system].faulted_calls += 1
        if fault.count is not None:
            remaining = fault.count - 1
            if remaining == 0:
                queue.pop(index)
            else:
                queue[index] = msgspec.structs.replace(fault, count=remaining)
        return fault

    def received(self, system: str | None = None) -> list[ReceivedCall]:
        return [call for call in self._received if system is None or call.system == system]

    def apply(
        self, system: str, path: str, key: str, *, headers: dict[str, str], body: ExternalSyncRequest, raw: Any
    ) -> StubReply:
        """Apply one call: a repeated key replays its first reply and is not recorded again."""
        stats = self._stats[system]
        if (replay := self._replies.get((system, key))) is not None:
            stats.duplicate_calls += 1
            return replay
        version_key = (system, body.customer_id)
        current = self._applied.get(version_key)
        if current is not None and body.profile_version <= current.profile_version:
            reply = StubReply(409, {"currentVersion": current.profile_version})
            stats.conflicts += 1
        else:
            self._applied[version_key] = CustomerState(body.profile_version, body.customer_name)
            reply = StubReply(200, {"applied": True, "version": body.profile_version})
            stats.applied_keys += 1
        self._replies[(system, key)] = reply
        self._received.append(ReceivedCall(system, path, headers, raw, reply.status))
        return reply
