"""The console's pure helpers: where sign-in may send the browser, notices, redirects, form values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.profile.console.forms import FieldProblems, choice, moment, number, ordered_range, text
from services.profile.console.rendering import age, query, see_other, when
from services.profile.console.session import _csrf_of, safe_next


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/console/sync?status=failed", "/console/sync?status=failed"),
        ("https://evil.example/console", "/console/"),
        ("//evil.example/console", "/console/"),
        ("/console\\@evil.example", "/console/"),
        ("/v1/customers", "/console/"),
        ("", "/console/"),
        (None, "/console/"),
    ],
)
def test_sign_in_only_returns_to_console_pages(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_csrf_token_is_bound_to_the_session_token() -> None:
    assert _csrf_of("token-a") == _csrf_of("token-a")
    assert _csrf_of("token-a") != _csrf_of("token-b")
    assert "token-a" not in _csrf_of("token-a")


def test_redirect_after_a_post_keeps_the_target_query_and_replaces_an_old_notice() -> None:
    redirect = see_other("/console/outbox?status=failed&notice=deleted&n=9", notice="redriven", n=2)
    assert redirect.url == "/console/outbox?status=failed&notice=redriven&n=2"
    assert redirect.status_code == 303


def test_query_leaves_out_empty_values_and_encodes() -> None:
    assert query({"status": "failed", "customerId": ""}, cursor=10) == "?status=failed&cursor=10"
    assert query({"name": "张 三"}) == "?name=%E5%BC%A0+%E4%B8%89"
    assert query({}) == ""


def test_times_read_by_people() -> None:
    now = datetime(2025, 5, 20, 8, 30, tzinfo=UTC)
    assert when(now) == "2025-05-20 08:30:00 UTC"
    assert when(None) == "—"
    assert age(now - timedelta(seconds=42), now) == "42 s"
    assert age(now - timedelta(minutes=3, seconds=5), now) == "3 min 5 s"
    assert age(now - timedelta(hours=2, minutes=7), now) == "2 h 7 min"
    assert age(now - timedelta(days=3, hours=1), now) == "3 d 1 h"


def test_form_values_or_a_sentence_about_them() -> None:
    problems = FieldProblems()
    assert moment("2025-05-20T08:30", "From", problems) == datetime(2025, 5, 20, 8, 30, tzinfo=UTC)
    assert moment("2025-05-20T08:30:00+08:00", "From", problems) == datetime(2025, 5, 20, 0, 30, tzinfo=UTC)
    assert choice("failed", ["failed", "published"], "Status", problems) == "failed"
    assert text("C001", "Customer id", problems) == "C001"
    assert number("", "Cursor", problems) is None
    assert not problems
    assert moment("yesterday", "From", problems) is None
    assert choice("lost", ["failed"], "Status", problems) is None
    assert text("x" * 65, "Customer id", problems) is None
    assert number("-1", "Cursor", problems) is None
    ordered_range(datetime(2025, 1, 2, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC), problems)
    assert problems.messages == [
        "From is not a date and time (use YYYY-MM-DD HH:MM, UTC).",
        "Status must be one of: failed.",
        "Customer id is longer than 64 characters.",
        "Cursor must be a whole number of at least 0.",
        "'From' must be earlier than 'to'.",
    ]
