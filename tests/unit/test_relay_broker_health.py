"""When a relay gives its shards up for want of the broker, and how it reports it (``libs.outbox.health``)."""

from __future__ import annotations

import httpx
import msgspec
import pytest
from prometheus_client import CollectorRegistry

from libs.kit.ops_server import Status, start_ops_server
from libs.kit.settings import SettingsError, load_settings
from libs.outbox.health import BrokerHealth
from libs.outbox.metrics import RelayMetrics
from libs.outbox.publisher import BatchResult
from libs.outbox.settings import RelaySettings

SENT = BatchResult()  # a step that handed a batch over: nothing settled yet
PUBLISHED = BatchResult(claimed=10, published=10)
BROKER_DOWN = BatchResult(claimed=10, failed=10, broker_failed=True)
POISON = BatchResult(claimed=1, failed=1)  # the broker refused one message: it answered


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def health_of(**settings: object) -> tuple[BrokerHealth, Clock, CollectorRegistry]:
    registry, clock = CollectorRegistry(), Clock()
    values: dict[str, object] = {"give_up_after_failed_batches": 3, "give_up_after_s": 10.0, **settings}
    health = BrokerHealth(msgspec.convert(values, RelaySettings), RelayMetrics(registry), clock)
    return health, clock, registry


def gauge(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("outbox_relay_broker_healthy")


def test_a_healthy_relay_is_ready_and_says_so_in_its_gauge() -> None:
    health, _, registry = health_of()
    assert health.healthy
    assert health.readiness.ready
    assert health.readiness.reason is None
    assert gauge(registry) == 1


def test_it_gives_up_after_the_setting_s_worth_of_broker_failures_in_a_row() -> None:
    health, _, registry = health_of()
    assert not health.observe(BROKER_DOWN, waiting=True)
    assert not health.observe(BROKER_DOWN, waiting=True)
    assert health.observe(BROKER_DOWN, waiting=True)
    assert not health.healthy
    readiness = health.readiness
    assert not readiness.ready
    assert readiness.reason is not None
    assert "3 batches in a row failed with broker errors" in readiness.reason
    assert gauge(registry) == 0
    assert registry.get_sample_value("outbox_relay_gave_up_total") == 1
    # Once given up, further failures do not give up again.
    assert not health.observe(BROKER_DOWN, waiting=True)
    assert not health.check()
    assert registry.get_sample_value("outbox_relay_gave_up_total") == 1


def test_a_published_batch_or_an_answered_one_breaks_the_row() -> None:
    health, _, _ = health_of()
    for between in (PUBLISHED, POISON):
        health.observe(BROKER_DOWN, waiting=True)
        health.observe(BROKER_DOWN, waiting=True)
        health.observe(between, waiting=True)
        assert health.failed_batches == 0
    assert not health.observe(BROKER_DOWN, waiting=True)
    assert health.healthy


def test_it_gives_up_when_rows_wait_too_long_without_a_publish_even_while_a_batch_hangs() -> None:
    health, clock, _ = health_of()
    health.observe(SENT, waiting=True)  # a batch in flight from now on; its acknowledgement never comes
    clock.now += 9.9
    assert not health.check()
    clock.now += 0.1
    assert health.check()  # what the lease keeper calls between batches
    reason = health.readiness.reason
    assert reason is not None
    assert "nothing published for 10.0 s while rows waited" in reason


def test_time_counts_only_while_rows_wait_and_restarts_with_each_publish() -> None:
    health, clock, _ = health_of()
    health.observe(SENT, waiting=False)  # nothing claimed: idle is not a stall
    clock.now += 60
    assert not health.check()
    health.observe(SENT, waiting=True)
    clock.now += 8
    health.observe(PUBLISHED, waiting=True)  # the next batch is already in flight
    clock.now += 8
    assert not health.check()
    health.observe(PUBLISHED, waiting=False)
    clock.now += 60
    assert not health.check()


def test_a_new_database_session_restarts_the_clock() -> None:
    health, clock, _ = health_of()
    health.observe(SENT, waiting=True)
    clock.now += 9
    health.new_session()
    clock.now += 9
    assert not health.check()
    assert health.healthy


def test_recovery_makes_it_ready_and_a_relapse_without_a_publish_backs_the_probe_off() -> None:
    health, clock, registry = health_of(broker_probe_interval_s=2.0)
    for _ in range(3):
        health.observe(BROKER_DOWN, waiting=True)
    assert health.probe_interval_s == 2.0
    clock.now += 30
    assert health.recovered() == 30
    assert health.healthy
    assert health.readiness.ready
    assert health.failed_batches == 0
    assert gauge(registry) == 1
    intervals = []
    for _ in range(6):  # the probe answers, publishing still fails: each relapse waits longer
        for _ in range(3):
            health.observe(BROKER_DOWN, waiting=True)
        intervals.append(health.probe_interval_s)
        health.recovered()
    assert intervals == [4.0, 8.0, 16.0, 32.0, 32.0, 32.0]
    health.observe(PUBLISHED, waiting=False)  # a real publish: back to the plain interval
    for _ in range(3):
        health.observe(BROKER_DOWN, waiting=True)
    assert health.probe_interval_s == 2.0
    readiness = health.readiness
    assert readiness.reason is not None
    assert "probing the broker every 2 s" in readiness.reason


@pytest.mark.parametrize(
    "environ",
    [
        {"PROFILE_RELAY_GIVE_UP_AFTER_FAILED_BATCHES": "0"},
        {"PROFILE_RELAY_GIVE_UP_AFTER_S": "0"},
        {"PROFILE_RELAY_GIVE_UP_AFTER_S": "nan"},
        {"PROFILE_RELAY_BROKER_PROBE_INTERVAL_S": "-1"},
        {"PROFILE_RELAY_BROKER_PROBE_TIMEOUT_S": "0"},
    ],
)
def test_give_up_settings_refuse_values_that_would_never_or_always_give_up(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings(RelaySettings, environ, "PROFILE_RELAY_")


def test_give_up_settings_from_the_environment() -> None:
    settings = load_settings(
        RelaySettings,
        {
            "PROFILE_RELAY_GIVE_UP_AFTER_FAILED_BATCHES": "7",
            "PROFILE_RELAY_GIVE_UP_AFTER_S": "45",
            "PROFILE_RELAY_BROKER_PROBE_INTERVAL_S": "3",
            "PROFILE_RELAY_BROKER_PROBE_TIMEOUT_S": "2.5",
        },
        "PROFILE_RELAY_",
    )
    assert (
        settings.give_up_after_failed_batches,
        settings.give_up_after_s,
        settings.broker_probe_interval_s,
        settings.broker_probe_timeout_s,
    ) == (7, 45.0, 3.0, 2.5)


async def test_ready_answers_503_with_the_reason_of_a_failing_status() -> None:
    state = {"status": Status(ok=True)}

    async def database() -> bool:
        return True

    runner = await start_ops_server(
        "127.0.0.1", 0, CollectorRegistry(), {"database": database}, {"publishing": lambda: state["status"]}
    )
    port = runner.addresses[0][1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            ok = await client.get("/ready")
            assert (ok.status_code, ok.json()) == (
                200,
                {"ready": True, "checks": {"database": True, "publishing": True}},
            )
            state["status"] = Status(ok=False, reason="gave its shards up: broker away")
            down = await client.get("/ready")
            assert down.status_code == 503
            assert down.json() == {
                "ready": False,
                "checks": {"database": True, "publishing": False},
                "reasons": {"publishing": "gave its shards up: broker away"},
            }
            assert (await client.get("/health")).status_code == 200
    finally:
        await runner.cleanup()


async def test_a_status_may_not_shadow_a_check() -> None:
    async def database() -> bool:
        return True

    with pytest.raises(ValueError, match="database"):
        await start_ops_server(
            "127.0.0.1", 0, CollectorRegistry(), {"database": database}, {"database": lambda: Status(ok=True)}
        )
