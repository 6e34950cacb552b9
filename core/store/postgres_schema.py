"""The production store's PostgreSQL schema, as numbered migrations, and how ``open()`` applies them.

Migrations run under a session advisory lock keyed by the schema's name, so engine processes starting
together queue behind the first one and then find nothing left to do. Each migration is applied in one
transaction with its row in ``schema_version``; a schema that is current is left untouched. Append new
migrations; never edit old ones.
"""

from __future__ import annotations

import re

import asyncpg  # type: ignore[import-untyped]

SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

MIGRATIONS: list[str] = [
    """
    CREATE TABLE tenants (
        tenant_id text PRIMARY KEY,
        default_flow text,
        enabled_plugins jsonb,  -- list of names; NULL: every installed plugin
        outbound_webhook text
    );

    -- API keys, hashed only (SHA-256 of the whole key, hex); a request finds its key by the hash
    CREATE TABLE api_keys (
        tenant_id text NOT NULL,
        key_id text NOT NULL,
        key_hash text NOT NULL UNIQUE,
        created_at double precision NOT NULL,
        revoked_at double precision,  -- NULL while the key is live
        PRIMARY KEY (tenant_id, key_id)
    );

    -- immutable once stored (a re-save must be equal); status is the publish state
    CREATE TABLE flow_versions (
        id bigserial PRIMARY KEY,  -- creation order, to break created_at ties
        tenant_id text NOT NULL,
        flow_id text NOT NULL,
        version text NOT NULL,
        document jsonb NOT NULL,
        status text NOT NULL CHECK (status IN ('draft', 'published')),
        created_at double precision NOT NULL,
        published_at double precision,  -- when it was last published
        UNIQUE (tenant_id, flow_id, version)
    );
    CREATE UNIQUE INDEX flow_versions_one_published
        ON flow_versions (tenant_id, flow_id) WHERE status = 'published';

    -- context NULL: reset; the row stays so the version keeps counting up
    CREATE TABLE conversations (
        tenant_id text NOT NULL,
        conversation_id text NOT NULL,
        context jsonb,
        version bigint NOT NULL,
        updated_at double precision NOT NULL,
        PRIMARY KEY (tenant_id, conversation_id)
    );

    -- append-only; partition-ready (by tenant or seq range) since nothing updates a row
    CREATE TABLE history (
        seq bigserial PRIMARY KEY,
        tenant_id text NOT NULL,
        conversation_id text NOT NULL,
        event jsonb NOT NULL
    );
    CREATE INDEX history_by_conversation ON history (tenant_id, conversation_id, seq);

    CREATE TABLE events (
        seq bigserial PRIMARY KEY,
        tenant_id text NOT NULL,
        type text NOT NULL,
        event jsonb NOT NULL
    );
    CREATE INDEX events_by_tenant ON events (tenant_id, seq);
    CREATE INDEX events_by_type ON events (tenant_id, type, seq);

    CREATE TABLE idempotency (
        tenant_id text NOT NULL,
        conversation_id text NOT NULL,
        message_id text NOT NULL,
        reply jsonb NOT NULL,
        created_at double precision NOT NULL,
        PRIMARY KEY (tenant_id, conversation_id, message_id)
    );
    CREATE INDEX idempotency_by_age ON idempotency (created_at);

    -- at most one per conversation; the row is the durable copy of the Redis schedule until fired
    CREATE TABLE timers (
        tenant_id text NOT NULL,
        conversation_id text NOT NULL,
        due_at double precision NOT NULL,
        state text NOT NULL,
        run text NOT NULL,
        PRIMARY KEY (tenant_id, conversation_id)
    );
    CREATE INDEX timers_by_due ON timers (due_at);

    -- A/B experiments over flow versions (schema only: the next wave reads and writes it)
    CREATE TABLE experiments (
        tenant_id text NOT NULL,
        experiment_id text NOT NULL,
        flow_id text NOT NULL,
        variants jsonb NOT NULL,  -- [{"version": ..., "weight": ...}]
        status text NOT NULL CHECK (status IN ('draft', 'running', 'stopped')),
        created_at double precision NOT NULL,
        started_at double precision,
        stopped_at double precision,
        PRIMARY KEY (tenant_id, experiment_id)
    );
    """,
    """
    -- Experiments are read and written now: the table keeps the whole experiment document (variants
    -- included), and, fixed at start, the flow version each merge-patched variant applies its patch to.
    -- It was never written before this migration, so its variants column becomes the document.
    ALTER TABLE experiments RENAME COLUMN variants TO document;
    ALTER TABLE experiments ADD COLUMN bases jsonb NOT NULL DEFAULT '{}';
    -- one running experiment per flow: two starts racing in two processes cannot both win
    CREATE UNIQUE INDEX experiments_one_running ON experiments (tenant_id, flow_id) WHERE status = 'running';

    -- one row per experiment run, counted from its events as they are recorded (same transaction), so
    -- an experiment's results are one aggregate over its runs, not a scan of its events
    CREATE TABLE experiment_runs (
        tenant_id text NOT NULL,
        experiment_id text NOT NULL,
        run text NOT NULL,
        variant text NOT NULL,
        conversation_id text NOT NULL,
        first_seen double precision NOT NULL,
        turns integer NOT NULL,
        no_matches integer NOT NULL,
        completed_at double precision,
        turns_to_complete integer,  -- the run's turns when it completed
        PRIMARY KEY (tenant_id, experiment_id, run)
    );
    """,
    """
    -- a claimed timer is leased, not deleted: it stays until the turn that fires it commits (which clears or
    -- replaces it), and if the firing process dies first, another fires it once the lease has passed
    ALTER TABLE timers ADD COLUMN claimed_until double precision;  -- NULL: not claimed
    """,
    """
    -- what an operator granted the tenant (secret names, outbound addresses, size limits); NULL: nothing
    ALTER TABLE tenants ADD COLUMN grants jsonb;
    """,
    """
    -- the key that signs the tenant's outbound webhook bodies (HMAC-SHA256); NULL: unsigned
    ALTER TABLE tenants ADD COLUMN webhook_secret text;

    -- a timer's messages until the tenant's webhook acknowledged them (2xx): each attempt leases the row
    -- (next_at moves past the attempt), a failed one sets when to try again, a success deletes it
    CREATE TABLE outbound_deliveries (
        delivery_id text PRIMARY KEY,
        tenant_id text NOT NULL,
        conversation_id text NOT NULL,
        body bytea NOT NULL,  -- the exact bytes POSTed (and signed) on every attempt
        attempts integer NOT NULL,
        next_at double precision NOT NULL,
        created_at double precision NOT NULL
    );
    CREATE INDEX outbound_deliveries_by_due ON outbound_deliveries (next_at);
    """,
    """
    -- events are written once: a turn's events only in its history rows, which also serve the event queries
    -- (Store.events) by tenant and type; an event recorded outside a turn (Store.record_events: an abandoned
    -- turn's error, a plugin's analytics event) is a history row too, but not part of its conversation's
    -- history (in_history false). The events table's rows that were not copies of history rows move here.
    ALTER TABLE history ADD COLUMN type text;
    ALTER TABLE history ADD COLUMN in_history boolean NOT NULL DEFAULT true;
    UPDATE history SET type = event->>'type';
    INSERT INTO history (tenant_id, conversation_id, event, type, in_history)
        SELECT e.tenant_id, COALESCE(e.event->>'conversation_id', ''), e.event, e.type, false FROM events e
        WHERE NOT EXISTS (SELECT FROM history h WHERE h.tenant_id = e.tenant_id
            AND h.conversation_id = e.event->>'conversation_id' AND h.event = e.event)
        ORDER BY e.seq;
    DROP TABLE events;
    CREATE INDEX history_by_tenant ON history (tenant_id, seq);
    CREATE INDEX history_by_type ON history (tenant_id, type, seq);
    """,
]


async def migrate(conn: asyncpg.Connection, schema: str) -> int:
    """Create ``schema`` if needed and apply the migrations it lacks; how many were applied.

    ``conn``'s ``search_path`` is ``schema``: the migrations name their tables unqualified.
    """
    if not SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"schema name {schema!r}: use lower-case letters, digits and _")
    await conn.execute("SELECT pg_advisory_lock(hashtext('mcp_engine.migrate:' || $1))", schema)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_version"
            " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = int(await conn.fetchval(f"SELECT COALESCE(MAX(version), 0) FROM {schema}.schema_version"))
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute(f"INSERT INTO {schema}.schema_version (version) VALUES ($1)", number)
        return len(MIGRATIONS) - current
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext('mcp_engine.migrate:' || $1))", schema)
