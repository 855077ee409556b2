"""The journey page's pure parts: the SVG chart renderer, trace ids, joining the outbox rows with the
connector's events, the trace URL setting, and the connector's bucketing of the delivery window."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from libs.kit.settings import SettingsError, load_settings
from libs.outbox.admin import OutboxEntry
from services.profile.console.charts import (
    HEIGHT,
    LEFT,
    PLOT_H,
    PLOT_W,
    TOP,
    ChartBucket,
    delivery_chart,
    duration,
)
from services.profile.console.connector_api import JourneyAttempt, JourneyEvent, JourneyRecord, SyncJourney
from services.profile.console.journey import changes_of, trace_id_of
from services.profile.console.settings import ConsoleSettings
from services.sync_connector.admin_journey import bucket_window

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2025, 5, 20, 8, 0, tzinfo=UTC)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _buckets(*values: tuple[int, float | None], bucket_s: int = 120) -> list[ChartBucket]:
    return [ChartBucket(T0 + timedelta(seconds=i * bucket_s), n, latency) for i, (n, latency) in enumerate(values)]


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def test_chart_draws_a_bar_per_delivering_bucket_scaled_to_the_busiest() -> None:
    buckets = _buckets((0, None), (2, 0.5), (4, 1.5), (0, None))
    svg = _parse(delivery_chart(buckets, 120, chart_id="chart-css", label="CSS"))
    bars = svg.findall(f"{SVG}rect[@class='bar']")
    assert len(bars) == 2
    heights = [float(bar.attrib["height"]) for bar in bars]
    # The busiest bucket (4) reaches the top of the axis (5: a round number at least 4).
    assert heights == [pytest.approx(2 / 5 * PLOT_H, abs=0.1), pytest.approx(4 / 5 * PLOT_H, abs=0.1)]
    for bar in bars:  # every bar stands on the baseline, inside the plot
        assert float(bar.attrib["y"]) + float(bar.attrib["height"]) == pytest.approx(TOP + PLOT_H, abs=0.1)
        assert LEFT <= float(bar.attrib["x"]) <= LEFT + PLOT_W
    tips = [bar.find(f"{SVG}title").text for bar in bars]  # type: ignore[union-attr]
    assert tips == [
        "08:02 to 08:04 UTC: 2 deliveries, p95 latency 500 ms",
        "08:04 to 08:06 UTC: 4 deliveries, p95 latency 1.5 s",
    ]


def test_chart_latency_line_breaks_where_nothing_was_delivered() -> None:
    buckets = _buckets((1, 0.2), (1, 0.4), (0, None), (3, 0.8), (1, 1.0))
    svg = _parse(delivery_chart(buckets, 120, chart_id="c", label="CRM"))
    lines = svg.findall(f"{SVG}polyline[@class='latency']")
    assert [len(line.attrib["points"].split()) for line in lines] == [2, 2]
    assert len(svg.findall(f"{SVG}circle")) == 4
    # Latency has its own scale: 1.0 s (the highest) is the top of the plot, labelled on the right.
    top_point = lines[1].attrib["points"].split()[-1]
    assert float(top_point.split(",")[1]) == pytest.approx(TOP, abs=0.1)
    assert "1.0 s" in [t.text for t in svg.findall(f"{SVG}text[@class='tick latency-tick']")]


def test_chart_without_deliveries_says_so_and_is_accessible() -> None:
    svg = _parse(delivery_chart(_buckets(*[(0, None)] * 30), 120, chart_id="chart-cms", label="CMS"))
    assert svg.attrib["role"] == "img"
    assert svg.attrib["aria-labelledby"] == "chart-cms-title chart-cms-desc"
    assert svg.find(f"{SVG}title").text == "CMS"  # type: ignore[union-attr]
    desc = svg.find(f"{SVG}desc").text  # type: ignore[union-attr]
    assert desc == "0 deliveries in the last 60 min; 30 bars of 2 min."
    assert svg.find(f"{SVG}rect") is None
    assert [t.text for t in svg.findall(f"{SVG}text[@class='empty']")] == ["no deliveries"]
    assert svg.attrib["height"] == str(HEIGHT)
    assert not any("style" in element.attrib for element in svg.iter())  # the CSP allows no inline styles


def test_chart_escapes_its_texts() -> None:
    markup = delivery_chart(_buckets((1, 0.1)), 60, chart_id='x"y', label="<script>alert(1)</script> & co")
    assert "<script>" not in markup
    svg = _parse(markup)
    assert svg.find(f"{SVG}title").text == "<script>alert(1)</script> & co"  # type: ignore[union-attr]
    assert svg.attrib["id"] == 'x"y'


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.0123, "12 ms"), (0.999, "999 ms"), (1.25, "1.2 s"), (95, "1.6 min"), (7200, "2.0 h")]
)
def test_durations_read_at_a_glance(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("traceparent", "expected"),
    [
        (TRACEPARENT, TRACE_ID),
        (TRACEPARENT.upper(), TRACE_ID),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-not-a-trace", None),
        ("", None),
        (None, None),
    ],
)
def test_trace_id_comes_from_a_valid_traceparent_only(traceparent: str | None, expected: str | None) -> None:
    assert trace_id_of(traceparent) == expected


def _entry(event_id: uuid.UUID, created: datetime, *, published: datetime | None, version: int) -> OutboxEntry:
    return OutboxEntry(
        id=event_id,
        seq=version,
        shard=0,
        aggregate_type="customer",
        aggregate_id="C-1",
        event_type="customer.profile.name-changed.v1",
        status="published" if published else "pending",
        attempts=0,
        last_error=None,
        published_partition=None,
        published_offset=None,
        created_at=created,
        published_at=published,
        payload={"profileVersion": version},
        headers={"traceparent": TRACEPARENT},
    )


def _record(system: str, status: str, completed: datetime | None) -> JourneyRecord:
    attempt = JourneyAttempt(1, "applied", 200, None, 12.5, completed or T0)
    return JourneyRecord(
        record_id=hash(system) % 1000,
        system_code=system,
        system_name=system,
        sync_status=status,
        retry_count=0,
        redrive_count=0,
        last_http_status=200,
        error_message=None,
        next_attempt_at=None,
        created_at=T0,
        completed_at=completed,
        attempt_count=1,
        attempts=[attempt],
    )


def test_changes_join_outbox_rows_and_connector_events_newest_first() -> None:
    first, second, purged = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    entries = [
        _entry(second, T0 + timedelta(minutes=5), published=None, version=3),
        _entry(first, T0, published=T0 + timedelta(milliseconds=40), version=2),
    ]
    journey = SyncJourney(
        customer_id="C-1",
        events=[
            JourneyEvent(
                str(first), "APP-2", 2, T0, TRACEPARENT, [_record("CSS", "success", T0 + timedelta(seconds=2))]
            ),
            # An older change whose outbox row retention removed: shown at its own time, without a trace.
            JourneyEvent(str(purged), "APP-1", 1, T0 - timedelta(days=9), None, [_record("CRM", "success", T0)]),
        ],
        attempts_per_record=50,
    )
    changes = changes_of(entries, journey, lambda trace_id: f"http://jaeger/trace/{trace_id}")
    assert [c.event_id for c in changes] == [str(second), str(first), str(purged)]
    newest, delivered, old = changes
    assert newest.outbox_status == "pending"
    assert newest.published_at is None
    assert [leg.record for leg in newest.legs] == [None, None, None]
    assert delivered.profile_version == 2
    assert delivered.publish_delay_s == pytest.approx(0.04)
    assert delivered.trace_id == TRACE_ID
    assert delivered.trace_url == f"http://jaeger/trace/{TRACE_ID}"
    assert [leg.system_code for leg in delivered.legs] == ["CRM", "CMS", "CSS"]
    css = delivered.legs[2].record
    assert css is not None
    assert delivered.delivery_delay_s(css) == pytest.approx(2.0)
    assert old.outbox_status is None
    assert old.committed_at == T0 - timedelta(days=9)
    assert old.trace_id is None
    assert old.trace_url is None


def test_changes_are_capped_and_need_no_connector() -> None:
    entries = [_entry(uuid.uuid4(), T0 + timedelta(seconds=i), published=None, version=i) for i in range(5)]
    changes = changes_of(entries, None, lambda _: None, limit=3)
    assert [c.profile_version for c in changes] == [4, 3, 2]
    assert all(c.trace_id == TRACE_ID and c.trace_url is None for c in changes)


def test_trace_url_setting_needs_the_placeholder_and_an_http_url() -> None:
    settings = load_settings(
        ConsoleSettings,
        {"PROFILE_CONSOLE_TRACE_URL_TEMPLATE": "http://127.0.0.1:16686/trace/{trace_id}"},
        "PROFILE_CONSOLE_",
    )
    assert settings.trace_url(TRACE_ID) == f"http://127.0.0.1:16686/trace/{TRACE_ID}"
    assert ConsoleSettings().trace_url(TRACE_ID) is None
    for bad in ("http://127.0.0.1:16686/trace/", "javascript:alert('{trace_id}')"):
        with pytest.raises(SettingsError, match="trace_url_template"):
            load_settings(ConsoleSettings, {"PROFILE_CONSOLE_TRACE_URL_TEMPLATE": bad}, "PROFILE_CONSOLE_")
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"trace_url_template": "ftp://x/{trace_id}"}, ConsoleSettings)


def test_delivery_window_is_aligned_to_whole_buckets_and_ends_after_now() -> None:
    now = datetime(2025, 5, 20, 8, 31, 17, tzinfo=UTC)
    start, end, bucket_s = bucket_window(now, 3600, 30)
    assert bucket_s == 120
    assert end == datetime(2025, 5, 20, 8, 32, tzinfo=UTC)
    assert start == end - timedelta(hours=1)
    start, end, bucket_s = bucket_window(datetime(2025, 5, 20, 8, 32, tzinfo=UTC), 3600, 30)
    assert end == datetime(2025, 5, 20, 8, 34, tzinfo=UTC)  # a moment on an edge opens the next bucket
    assert bucket_window(now, 100, 30)[2] == 4  # whole seconds, covering at least the window
