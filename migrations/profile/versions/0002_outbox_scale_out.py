"""Outbox scale-out: shards, leases and retention (filled in by the guarantees work).

Revision ID: profile_0002
Revises: profile_0001
"""

from migrations.env_common import execute_script

revision = "profile_0002"
down_revision = "profile_0001"
branch_labels = None
depends_on = None

UPGRADE = "SELECT 1;"
DOWNGRADE = "SELECT 1;"


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
