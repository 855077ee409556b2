"""Messages the connector can never process: kept as they were read, then published to the dead-letter topic.

A message that cannot be decoded (not a CloudEvent of a known shape, or an
event outside the contract), or that makes the handler fail the same way on
every try, is dead-lettered alone so its partition goes on. There is no sync
record for it (it may name no event or customer at all), so it gets a row of
its own here: the Kafka coordinates, key, value and headers as received
(header values base64, as they are bytes), what could be read of it (event id,
customer, trace id), why, and the publishing state (the same small outbox as
``dead_letters``). Unique on the coordinates: a redelivery after a crash adds
nothing.

Revision ID: sync_0006
Revises: sync_0005
"""

from migrations.env_common import execute_script

revision = "sync_0006"
down_revision = "sync_0005"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE sync.unprocessable_messages (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    system_code            varchar(20)  NOT NULL,
    topic                  text         NOT NULL,
    kafka_partition        integer      NOT NULL,
    kafka_offset           bigint       NOT NULL,
    message_key            bytea,
    message_value          bytea,
    headers                jsonb        NOT NULL DEFAULT '[]'::jsonb,
    event_id               text,
    customer_id            text,
    trace_id               varchar(32),
    reason                 varchar(32)  NOT NULL CHECK (reason IN ('undecodable', 'handler_failed')),
    error                  text         NOT NULL,
    failures               integer      NOT NULL,
    created_at             timestamptz  NOT NULL DEFAULT now(),
    published_at           timestamptz,
    publish_claimed_until  timestamptz,
    publish_attempts       integer      NOT NULL DEFAULT 0,
    publish_error          text,
    CONSTRAINT uq_unprocessable_message UNIQUE (system_code, topic, kafka_partition, kafka_offset)
);
CREATE INDEX ix_unprocessable_unpublished ON sync.unprocessable_messages (id) WHERE published_at IS NULL;
CREATE INDEX ix_unprocessable_created ON sync.unprocessable_messages (created_at);
"""

DOWNGRADE = r"""
DROP TABLE sync.unprocessable_messages;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
