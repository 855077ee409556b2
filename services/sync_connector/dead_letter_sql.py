"""The statements of dead-letter publishing: claim a batch with a lease, mark it published or not.

``sync.dead_letters`` and ``sync.unprocessable_messages`` keep their publishing
state in the same columns; ``PUBLICATIONS`` holds each table's statements.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import TextClause, text


class Publication(NamedTuple):
    """The statements of one table's publishing: both tables keep its state in the same columns."""

    claim: TextClause
    published: TextClause
    unpublished: TextClause
    # Left claimed (until the lease ends): tried again then, not in a tight loop.
    unbuildable: TextClause


def _publication(table: str, returning: str) -> Publication:
    claim = f"""
    UPDATE sync.{table} SET publish_claimed_until = now() + make_interval(secs => :lease_s),
                            publish_attempts = publish_attempts + 1
    WHERE id IN (
        SELECT id FROM sync.{table}
        WHERE published_at IS NULL AND (publish_claimed_until IS NULL OR publish_claimed_until < now())
        ORDER BY id LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING {returning}
    """  # noqa: S608 - fixed names, values are bound parameters

    def setting(assignments: str) -> TextClause:
        return text(f"UPDATE sync.{table} SET {assignments} WHERE id = ANY(:ids)")  # noqa: S608 - fixed names

    return Publication(
        claim=text(claim),
        published=setting("published_at = now(), publish_claimed_until = NULL, publish_error = NULL"),
        unpublished=setting("publish_claimed_until = NULL, publish_error = :error"),
        unbuildable=setting("publish_error = :error"),
    )


PUBLICATIONS = {
    "dead_letters": _publication(
        "dead_letters",
        """id, record_id, event_id::text AS event_id, system_code, customer_id, reason, payload::text AS payload,
              headers, last_error, attempts, created_at""",
    ),
    "unprocessable_messages": _publication(
        "unprocessable_messages",
        """id, system_code, topic, kafka_partition, kafka_offset, message_key, message_value,
              headers::text AS headers, event_id, customer_id, reason, error, failures""",
    ),
}
