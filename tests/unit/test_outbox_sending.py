"""Pure rules of the relay's batch sending: the partition of a key, key order of the outcomes, the size bound."""

from __future__ import annotations

import json
import uuid

from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from libs.outbox.producing import ClaimedRow
from libs.outbox.sending import Delivered, KeyPartitions, Outcome, _size_bound, in_key_order


def row(seq: int, key: str) -> ClaimedRow:
    return ClaimedRow(uuid.uuid4(), seq, 0, key, "{}", "{}", 0)


def test_a_key_gets_the_partition_the_producer_would_give_it_also_after_the_topic_grows() -> None:
    keys = [f"C{n}".encode() for n in range(2_000)]
    default = DefaultPartitioner()
    key_partitions = KeyPartitions()
    for partitions in ([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5, 6, 7]):
        key_partitions.use(partitions)
        assert [key_partitions.of(key) for key in keys] == [default(key, partitions, partitions) for key in keys]


def test_a_key_stops_at_its_first_failure_and_later_rows_of_it_are_held_back() -> None:
    rows = [row(1, "A"), row(2, "B"), row(3, "A"), row(4, "B"), row(5, "C")]
    failure = KafkaTimeoutError()
    acknowledged: list[Outcome] = [failure, Delivered(0, 10), Delivered(1, 7), Delivered(0, 11), None]
    blocked: set[str] = set()

    settled = in_key_order(rows, acknowledged, blocked)

    assert settled == [failure, Delivered(0, 10), None, Delivered(0, 11), None]
    assert blocked == {"A", "C"}


def test_keys_blocked_in_an_earlier_batch_hold_back_their_rows_in_the_next() -> None:
    blocked = {"A"}

    settled = in_key_order([row(6, "A"), row(7, "B")], [Delivered(0, 12), Delivered(1, 8)], blocked)

    assert settled == [None, Delivered(1, 8)]


def test_the_size_bound_that_skips_the_exact_estimate_is_never_below_it() -> None:
    # Rows whose bound is under the producer's limit skip aiokafka's estimate: the bound must hold for
    # any text (4-byte characters, escapes, many tiny headers, none).
    texts = ["", "a", "张三", "😀" * 50, 'quote " and \\ backslash', "\u0001\u001f", "x" * 5_000]
    header_sets = [{}, {"": ""}, {f"h{n}": "" for n in range(300)}, {f"ce_{n}": t for n, t in enumerate(texts)}]
    header_sets += [{t: t} for t in texts]
    for key in texts:
        for value in texts:
            for headers in header_sets:
                claimed = ClaimedRow(uuid.uuid4(), 1, 0, key, value, json.dumps(headers, ensure_ascii=False), 0)
                encoded = [(name, text.encode()) for name, text in headers.items()]
                estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes(key.encode(), value.encode(), encoded)
                assert _size_bound(claimed) >= estimate
