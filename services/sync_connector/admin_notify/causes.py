"""The causes an admin is told of, each with a stable key: what it means and what to do.

A cause key is ``<kind>`` or ``<kind>:<code>`` (``dead-letter:CSS``, ``breaker-open:CRM``,
``parked-outbox``): one window per key, so a CSS outage and a CRM outage are two mails, and a
hundred dead letters of CSS are one.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class CauseKind(StrEnum):
    INVALID_STATUS = "invalid-status"
    UNEXPECTED_ERROR = "unexpected-error"
    UPDATE_FAILED = "update-failed"
    DEAD_LETTER = "dead-letter"
    NOTIFICATION_FAILED = "notification-failed"
    UNPROCESSABLE = "unprocessable"
    PARKED_OUTBOX = "parked-outbox"
    BREAKER_OPEN = "breaker-open"


class CauseText(msgspec.Struct, frozen=True):
    title: str
    action: str
    runbook: str  # its section of docs/runbook.md (the anchor)


_TEXTS = {
    CauseKind.INVALID_STATUS: CauseText(
        "Profile updates refused: INVALID_STATUS",
        "An update was asked for an application that is not approved (rejected, completed or pending). "
        "Check with the audit system why it asked; nothing was changed.",
        "profileupdateinvalidstatus",
    ),
    CauseKind.UNEXPECTED_ERROR: CauseText(
        "Profile updates failed with an unexpected error",
        "The update was rolled back and the application marked update_failed. Read the error of the "
        "trace id in the logs, fix the cause, then re-apply the application in the console.",
        "namechangeupdatefailed",
    ),
    CauseKind.UPDATE_FAILED: CauseText(
        "Profile updates failed: applications update_failed",
        "The update was rolled back and the application marked update_failed with the code shown. "
        "Re-apply the application in the console once the cause is gone.",
        "namechangeupdatefailed",
    ),
    CauseKind.DEAD_LETTER: CauseText(
        "Changes dead-lettered at an external system",
        "The system refused the change for good or did not take it before its delivery deadline. Fix "
        "the system or the data, then retry the failed records (console: Sync, or `sync retry`).",
        "syncdeadletters",
    ),
    CauseKind.NOTIFICATION_FAILED: CauseText(
        "Customer notifications failed",
        "The notification could not be sent before its deadline or was refused. Check the channel "
        "(SMTP server, SMS gateway), then re-send the failed notifications.",
        "notificationsfailed",
    ),
    CauseKind.UNPROCESSABLE: CauseText(
        "Messages the connector can never process",
        "A message on the topic could not be decoded or always failed its handler; it was set aside on "
        "the dead-letter topic and its partition went on. Read it there and fix its producer.",
        "syncunprocessablemessages",
    ),
    CauseKind.PARKED_OUTBOX: CauseText(
        "Outbox rows parked by the relay",
        "The relay gave up publishing these rows; later changes of their customers wait behind them. "
        "Fix the cause (the last error), then re-drive them (console: Outbox).",
        "outboxrowsparked",
    ),
    CauseKind.BREAKER_OPEN: CauseText(
        "An external system or channel has been down for a while",
        "The circuit breaker has not closed since the time shown; changes wait and are delivered when "
        "the system answers again, until their deadline. Check the system.",
        "circuitbreakeropen",
    ),
}


def cause_key(kind: CauseKind, code: str | None = None) -> str:
    return kind.value if code is None else f"{kind.value}:{code}"


def kind_of(key: str) -> CauseKind:
    return CauseKind(key.split(":", 1)[0])


def text_of(key: str) -> CauseText:
    return _TEXTS[kind_of(key)]


def code_of(key: str) -> str | None:
    _, _, code = key.partition(":")
    return code or None
