"""Outbox scale-out: a shard per row, shard leases with fencing tokens, relay membership, retention index.

Every outbox row gets ``shard`` = md5(aggregate_id) read as an unsigned 32-bit number
mod 32 (a stored generated column, so every writer gets it; ``libs.outbox.table.shard_of``
is the same function in Python). The shard count, 32, is fixed here: it is the number of
rows in ``outbox_shards`` and the modulus of the column, and changing it would move keys
between shards while rows of theirs are pending.

``outbox_shards`` holds one lease per shard (owner, expiry, fencing token);
``outbox_relay_instances`` the heartbeats relay instances use to compute their fair share.
Adding the stored column rewrites the outbox once; the table is kept small by retention.

Revision ID: profile_0002
Revises: profile_0001
"""

from migrations.env_common import execute_script

revision = "profile_0002"
down_revision = "profile_0001"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE profile.outbox
    ADD COLUMN shard smallint NOT NULL
        GENERATED ALWAYS AS (((('x' || left(md5(aggregate_id), 8))::bit(32)::bigint % 32)::smallint)) STORED;

-- Retention finds old published rows of the shards it owns without touching the rest.
CREATE INDEX ix_outbox_published_age ON profile.outbox (shard, published_at) WHERE status = 'published';
-- Admin listings by time range.
CREATE INDEX ix_outbox_created ON profile.outbox (created_at);

-- A queue table: every row is updated once and deleted later; vacuum it early and often
-- so the pending index stays free of dead entries.
ALTER TABLE profile.outbox SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.05
);

CREATE TABLE profile.outbox_shards (
    shard        smallint     PRIMARY KEY CHECK (shard >= 0 AND shard < 32),
    owner        varchar(200),
    -- Incremented on every acquisition: a mark or failure update carries the token it
    -- claimed under and changes nothing once another instance has acquired the shard.
    token        bigint       NOT NULL DEFAULT 0,
    expires_at   timestamptz,
    acquired_at  timestamptz,
    CHECK ((owner IS NULL) = (expires_at IS NULL))
);
INSERT INTO profile.outbox_shards (shard) SELECT generate_series(0, 31);

CREATE TABLE profile.outbox_relay_instances (
    instance_id   varchar(200) PRIMARY KEY,
    host          varchar(255) NOT NULL,
    pid           integer      NOT NULL,
    started_at    timestamptz  NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz  NOT NULL DEFAULT now()
);
"""

DOWNGRADE = r"""
DROP TABLE profile.outbox_relay_instances;
DROP TABLE profile.outbox_shards;
ALTER TABLE profile.outbox RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_analyze_scale_factor
);
DROP INDEX profile.ix_outbox_created;
DROP INDEX profile.ix_outbox_published_age;
ALTER TABLE profile.outbox DROP COLUMN shard;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
