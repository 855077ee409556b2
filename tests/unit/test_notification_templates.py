"""The notice templates: Chinese by default, English on request, names inert, one line each, no header injection."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.sync_connector.notify.channels import EmailTransport
from services.sync_connector.notify.settings import Channel, Language, NotifySettings
from services.sync_connector.notify.templates import MAX_VALUE_LENGTH, NoticeFacts, choose_language, clean, render

SHANGHAI = ZoneInfo("Asia/Shanghai")
CHANGED_AT = datetime(2025, 5, 20, 8, 30, tzinfo=UTC)
HOSTILE = (
    "Eve\r\nBcc: victim@example.org",
    "{{7*7}}",
    "${new_name}",
    "$customer_name",
    "{0} {customer_name!r} %s %(x)s",
    "<script>alert(1)</script>",
    "a\u202eevil\u200b\u2028b",
    "\x00\x1b[31m",
)


def facts(**overrides: str) -> NoticeFacts:
    values = {"customer_name": "张三", "old_name": "张三", "new_name": "李四", "application_id": "APP-42", **overrides}
    return NoticeFacts(changed_at=CHANGED_AT, **values)


def test_chinese_email_has_every_fact_in_local_time() -> None:
    notice = render(Channel.EMAIL, Language.ZH, facts(), SHANGHAI)

    assert notice.subject == "户名变更已完成（申请编号 APP-42）"  # noqa: RUF001
    for line in ("尊敬的 张三：", "  申请编号：APP-42", "  原户名：张三", "  新户名：李四"):  # noqa: RUF001
        assert line in notice.body.splitlines()
    assert "2025-05-20 16:30 (UTC+08:00)" in notice.body


def test_english_sms_is_one_line() -> None:
    notice = render(Channel.SMS, Language.EN, facts(customer_name="Zhang San"), ZoneInfo("UTC"))

    assert notice.subject == ""
    assert notice.body.startswith("Dear Zhang San, your account name change (APP-42) was completed on ")
    assert '"张三" is now "李四"' in notice.body
    assert "2025-05-20 08:30 (UTC+00:00)" in notice.body
    assert "\n" not in notice.body


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("channel", list(Channel))
def test_names_are_text_never_template_syntax_nor_extra_lines(hostile: str, channel: Channel) -> None:
    plain = render(channel, Language.ZH, facts(), SHANGHAI)
    notice = render(channel, Language.ZH, facts(new_name=hostile, customer_name=hostile), SHANGHAI)

    assert clean(hostile) in notice.body
    assert notice.body.count("\n") == plain.body.count("\n")  # no line added, none removed
    assert "\r" not in notice.body
    assert "49" not in notice.body  # {{7*7}} is not evaluated
    assert "李四" not in notice.body  # ${new_name} in a value is not the new name


@pytest.mark.parametrize("hostile", HOSTILE)
def test_an_email_built_from_hostile_values_has_only_its_own_headers(hostile: str) -> None:
    transport = EmailTransport(NotifySettings())
    notice = render(Channel.EMAIL, Language.EN, facts(application_id=hostile, new_name=hostile), SHANGHAI)

    message = transport.build(event_id="e-1", to="zhang@example.com", notice=notice)

    assert sorted(message.keys()) == sorted(
        ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "Content-Type",
         "Content-Transfer-Encoding", "MIME-Version", "Content-Language"]
    )  # fmt: skip
    assert message["To"] == "zhang@example.com"
    assert message["Message-ID"] == "<e-1.email@customer-profile.example>"
    assert message.get_content_type() == "text/plain"


@pytest.mark.parametrize(
    "address", ["a@b.com\r\nBcc: x@y.com", "a@b.com, c@d.com", "no-at-sign", "x y@b.com", "a@b.com\nTo: c@d.com"]
)
def test_a_recipient_that_is_not_exactly_one_address_is_refused(address: str) -> None:
    transport = EmailTransport(NotifySettings())
    notice = render(Channel.EMAIL, Language.ZH, facts(), SHANGHAI)

    with pytest.raises(ValueError, match="not a valid address"):
        transport.build(event_id="e-1", to=address, notice=notice)


def test_clean_keeps_visible_text_on_one_capped_line() -> None:
    assert clean("  李\t四\r\n ") == "李 四"
    assert clean("a\u202eb\u200bc") == "a b c"
    long = clean("名" * 500)
    assert len(long) == MAX_VALUE_LENGTH
    assert long.endswith("…")


@pytest.mark.parametrize(
    ("preferred", "expected"),
    [(None, Language.ZH), ("", Language.ZH), ("en", Language.EN), ("en-GB", Language.EN), ("EN_us", Language.EN),
     ("zh-Hans-CN", Language.ZH), ("fr", Language.ZH)],
)  # fmt: skip
def test_the_customer_language_when_there_are_templates_for_it(preferred: str | None, expected: Language) -> None:
    assert choose_language(preferred, Language.ZH) is expected
