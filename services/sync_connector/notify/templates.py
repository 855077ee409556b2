# ruff: noqa: RUF001 - the Chinese templates take full-width punctuation on purpose
"""The completed-name-change notice in Chinese and English, for e-mail and SMS (pure, unit tested).

Safe by construction: the templates are fixed strings of this module and are
filled in one pass by ``string.Template.substitute``; a value is inserted as
text and never read as template syntax, so a name like ``${new_name}``,
``{{7*7}}`` or ``%s`` comes out as written. Before that every value loses its
control and format characters (CR, LF, tabs, zero-width and bidi overrides)
and is capped in length, so a name can neither add lines to the message, nor
fake a header, nor reorder what the reader sees. The result is plain text.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, tzinfo
from string import Template

import msgspec

from services.sync_connector.notify.settings import Channel, Language

MAX_VALUE_LENGTH = 100
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_SPACES = re.compile(r"\s+")


class NoticeFacts(msgspec.Struct, frozen=True):
    """What the notice says; the names come from the event, the greeting from the current profile."""

    customer_name: str
    old_name: str
    new_name: str
    application_id: str
    changed_at: datetime


class RenderedNotice(msgspec.Struct, frozen=True):
    subject: str  # e-mail only; empty for SMS
    body: str
    language: Language


def clean(value: str) -> str:
    """One line of visible text: control/format characters become spaces, runs of spaces one, capped."""
    visible = "".join(" " if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in value)
    collapsed = _SPACES.sub(" ", visible).strip()
    return collapsed if len(collapsed) <= MAX_VALUE_LENGTH else collapsed[: MAX_VALUE_LENGTH - 1] + "…"


def _time(moment: datetime, zone: tzinfo) -> str:
    local = moment.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})"


_SUBJECTS = {
    Language.ZH: Template("户名变更已完成（申请编号 $application_id）"),
    Language.EN: Template("Your account name change is complete ($application_id)"),
}
_EMAIL_BODIES = {
    Language.ZH: Template(
        "尊敬的 $customer_name：\n"
        "\n"
        "您的户名变更申请已办理完成。\n"
        "\n"
        "  申请编号：$application_id\n"
        "  原户名：$old_name\n"
        "  新户名：$new_name\n"
        "  完成时间：$changed_at\n"
        "\n"
        "如非本人申请，请及时联系客服。本邮件由系统自动发送，请勿回复。\n"
    ),
    Language.EN: Template(
        "Dear $customer_name,\n"
        "\n"
        "Your account name change is complete.\n"
        "\n"
        "  Application: $application_id\n"
        "  Previous name: $old_name\n"
        "  New name: $new_name\n"
        "  Completed at: $changed_at\n"
        "\n"
        "If you did not ask for this change, please contact customer service. "
        "This message was sent automatically; please do not reply.\n"
    ),
}
_SMS_BODIES = {
    Language.ZH: Template(
        "【客户服务】尊敬的 $customer_name，您的户名变更（申请编号 $application_id）已于 $changed_at 完成："
        "“$old_name”变更为“$new_name”。如非本人申请，请联系客服。"
    ),
    Language.EN: Template(
        "Dear $customer_name, your account name change ($application_id) was completed on $changed_at: "
        '"$old_name" is now "$new_name". If this was not you, please contact customer service.'
    ),
}


def render(channel: Channel, language: Language, facts: NoticeFacts, zone: tzinfo) -> RenderedNotice:
    values = {
        "customer_name": clean(facts.customer_name),
        "old_name": clean(facts.old_name),
        "new_name": clean(facts.new_name),
        "application_id": clean(facts.application_id),
        "changed_at": _time(facts.changed_at, zone),
    }
    if channel is Channel.EMAIL:
        return RenderedNotice(
            _SUBJECTS[language].substitute(values), _EMAIL_BODIES[language].substitute(values), language
        )
    return RenderedNotice("", _SMS_BODIES[language].substitute(values), language)


def choose_language(preferred: str | None, default: Language) -> Language:
    """The customer's language when the profile stores one we have templates for, else the default."""
    if preferred:
        primary = preferred.strip().lower().replace("_", "-").split("-", 1)[0]
        if primary in {language.value for language in Language}:
            return Language(primary)
    return default
