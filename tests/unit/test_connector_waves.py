"""The fast path's waves: each customer at most once per wave, its events in order, waves bounded."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.events import CustomerNameChanged
from services.sync_connector.batches import AcceptedEvent, waves


def accepted(customer: str, version: int) -> AcceptedEvent:
    event = CustomerNameChanged(
        customer_id=customer,
        application_id=f"APP-{customer}-{version}",
        old_name="张三",
        new_name="李四",
        profile_version=version,
        reason="test",
        changed_at=datetime(2026, 11, 21, tzinfo=UTC),
    )
    return AcceptedEvent(f"{customer}-{version}", event, {})


def test_distinct_customers_share_one_wave() -> None:
    events = [accepted(c, 2) for c in "ABC"]
    assert waves(events, 64) == [[0, 1, 2]]


def test_a_customers_later_events_go_to_later_waves_in_order() -> None:
    events = [accepted("A", 2), accepted("B", 2), accepted("A", 3), accepted("A", 4), accepted("C", 2)]
    assert waves(events, 64) == [[0, 1, 4], [2], [3]]


def test_a_full_wave_spills_into_the_next_without_reordering_a_customer() -> None:
    events = [accepted("A", 2), accepted("B", 2), accepted("C", 2), accepted("A", 3), accepted("D", 2)]
    result = waves(events, 2)
    assert all(len(wave) <= 2 for wave in result)
    assert sorted(i for wave in result for i in wave) == list(range(len(events)))
    position = {i: n for n, wave in enumerate(result) for i in wave}
    assert position[0] < position[3], "A's version 2 goes before its version 3"
    for wave in result:
        customers = [events[i].event.customer_id for i in wave]
        assert len(customers) == len(set(customers))
