"""usage events: a covering index for the console's overview

The overview's charts read every request row of the range (percentiles of latency and
overhead, errors apart from blocks and 429s, hourly counts): through (tenant_id,
occurred_at) alone each row was a heap fetch, and rows written by several processes lie
scattered over the heap. With the columns the charts read included, the reads are
index-only. It replaces the plain (tenant_id, occurred_at) index (same keys); built
concurrently, so an upgrade does not stop usage from being recorded.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COVERED = [
    "key_id",
    "alias",
    "decision",
    "status",
    "latency_ms",
    "overhead_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "finding_types",
]


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_usage_events_overview",
            "usage_events",
            ["tenant_id", "occurred_at"],
            postgresql_include=COVERED,
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.drop_index(
            "ix_usage_events_tenant_time",
            "usage_events",
            postgresql_concurrently=True,
            if_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_usage_events_tenant_time",
            "usage_events",
            ["tenant_id", "occurred_at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.drop_index("ix_usage_events_overview", "usage_events", postgresql_concurrently=True)
