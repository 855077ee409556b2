"""Pure rules of the scale-out relay: fair share, rebalance plans, shard hashing, relay settings."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest

from libs.kit.settings import SettingsError, load_settings
from libs.outbox.leases import fair_share, plan_rebalance
from libs.outbox.settings import RelaySettings
from libs.outbox.table import SHARD_COUNT, shard_of


@pytest.mark.parametrize(("live", "share"), [(0, 32), (1, 32), (2, 16), (3, 11), (5, 7), (32, 1), (40, 1)])
def test_fair_share_is_the_ceiling_of_shards_over_live_instances(live: int, share: int) -> None:
    assert fair_share(32, live) == share


@pytest.mark.parametrize("live", range(1, 12))
def test_the_shares_of_all_live_instances_cover_every_shard(live: int) -> None:
    assert fair_share(SHARD_COUNT, live) * live >= SHARD_COUNT


def test_an_instance_above_its_share_releases_its_highest_shards() -> None:
    plan = plan_rebalance(range(32), 32, 3)
    assert plan.acquire == 0
    assert plan.release == frozenset(range(11, 32))


def test_an_instance_below_its_share_asks_for_the_difference() -> None:
    plan = plan_rebalance([1, 2, 3], 32, 2)
    assert plan.release == frozenset()
    assert plan.acquire == 13


def test_an_instance_at_its_share_does_nothing() -> None:
    plan = plan_rebalance(range(11), 32, 3)
    assert (plan.release, plan.acquire) == (frozenset(), 0)


def test_repeated_plans_converge_to_one_owner_per_shard_for_any_arrival_order() -> None:
    """Simulate instances joining one by one; each applies its plan against a shared lease table."""
    for live in range(1, 9):
        owners: dict[int, int | None] = dict.fromkeys(range(SHARD_COUNT))
        for _, instance in itertools.product(range(4), range(live)):  # a few rounds of ticks
            held = [s for s, o in owners.items() if o == instance]
            plan = plan_rebalance(held, SHARD_COUNT, live)
            for shard in plan.release:
                owners[shard] = None
            free = [s for s, o in owners.items() if o is None][: plan.acquire]
            for shard in free:
                owners[shard] = instance
        counts = Counter(owners.values())
        assert None not in counts, (live, counts)
        assert max(counts.values()) <= math.ceil(SHARD_COUNT / live)


def test_shard_of_is_stable_and_spreads_keys() -> None:
    # The values PostgreSQL computes for the same keys (checked against the server in
    # tests/integration/test_outbox_shards.py).
    assert shard_of("C001") == 18
    assert shard_of("中文") == 3
    counts = Counter(shard_of(f"CUST{n:05d}") for n in range(3_200))
    assert set(counts) == set(range(SHARD_COUNT))
    assert max(counts.values()) < 2 * 3_200 / SHARD_COUNT


def test_relay_settings_from_the_environment() -> None:
    settings = load_settings(
        RelaySettings,
        {
            "PROFILE_RELAY_LEASE_TTL_S": "6",
            "PROFILE_RELAY_LEASE_RENEW_INTERVAL_S": "1.5",
            "PROFILE_RELAY_BATCH_SIZE": "9",
        },
        "PROFILE_RELAY_",
    )
    assert (settings.lease_ttl_s, settings.lease_renew_interval_s, settings.batch_size) == (6.0, 1.5, 9)


@pytest.mark.parametrize(
    "environ",
    [
        {"PROFILE_RELAY_LEASE_TTL_S": "2", "PROFILE_RELAY_LEASE_RENEW_INTERVAL_S": "1.5"},
        {"PROFILE_RELAY_BATCH_SIZE": "0"},
        {"PROFILE_RELAY_RETENTION_S": "-1"},
    ],
)
def test_relay_settings_refuse_unsafe_values(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings(RelaySettings, environ, "PROFILE_RELAY_")
