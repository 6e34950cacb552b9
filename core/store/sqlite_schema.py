"""The embedded store's schema, as numbered migrations, and how ``open()`` applies them.

Each migration is one SQL script, applied once in order inside one ``BEGIN IMMEDIATE`` transaction
together with its row in ``schema_version``: two engines opening the same new file cannot both apply
it, and a file that is already current is left untouched. Append new migrations; never edit old ones.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import aiosqlite

MIGRATIONS: list[str] = [
    """
    CREATE TABLE tenants (
        tenant_id TEXT PRIMARY KEY,
        default_flow TEXT,
        enabled_plugins TEXT,  -- JSON list, NULL: every installed plugin
        outbound_webhook TEXT
    );

    CREATE TABLE flow_versions (
        tenant_id TEXT NOT NULL,
        flow_id TEXT NOT NULL,
        version TEXT NOT NULL,
        document BLOB NOT NULL,  -- canonical JSON (sorted keys), compared to tell a re-save from a change
        status TEXT NOT NULL CHECK (status IN ('draft', 'published')),
        created_at REAL NOT NULL,
        published_at REAL,  -- when it was last published
        UNIQUE (tenant_id, flow_id, version)
    );
    CREATE UNIQUE INDEX flow_versions_one_published
        ON flow_versions (tenant_id, flow_id) WHERE status = 'published';

    -- context NULL: reset; the row stays so the version keeps counting up
    CREATE TABLE conversations (
        tenant_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        context BLOB,
        version INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (tenant_id, conversation_id)
    ) WITHOUT ROWID;

    CREATE TABLE history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        event BLOB NOT NULL
    );
    CREATE INDEX history_by_conversation ON history (tenant_id, conversation_id, seq);

    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        type TEXT NOT NULL,
        event BLOB NOT NULL
    );
    CREATE INDEX events_by_tenant ON events (tenant_id, seq);
    CREATE INDEX events_by_type ON events (tenant_id, type, seq);

    CREATE TABLE idempotency (
        tenant_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        reply BLOB NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (tenant_id, conversation_id, message_id)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_by_age ON idempotency (created_at);

    CREATE TABLE timers (
        tenant_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        due_at REAL NOT NULL,
        state TEXT NOT NULL,
        run TEXT NOT NULL,
        PRIMARY KEY (tenant_id, conversation_id)
    ) WITHOUT ROWID;
    CREATE INDEX timers_by_due ON timers (due_at);
    """,
    """
    -- API keys, hashed only (SHA-256 of the whole key, hex); a request finds its key by the hash
    CREATE TABLE api_keys (
        tenant_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        revoked_at REAL,  -- NULL while the key is live
        PRIMARY KEY (tenant_id, key_id)
    ) WITHOUT ROWID;
    """,
    """
    -- A/B experiments: the whole document, its life (draft -> running -> stopped) and, fixed at start,
    -- the flow version each merge-patched variant applies its patch to
    CREATE TABLE experiments (
        tenant_id TEXT NOT NULL,
        experiment_id TEXT NOT NULL,
        flow_id TEXT NOT NULL,
        document BLOB NOT NULL,  -- canonical JSON, compared to tell a re-create from a change
        status TEXT NOT NULL CHECK (status IN ('draft', 'running', 'stopped')),
        created_at REAL NOT NULL,
        started_at REAL,
        stopped_at REAL,
        bases TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (tenant_id, experiment_id)
    ) WITHOUT ROWID;
    -- one running experiment per flow, enforced by the file itself (two engines may share it)
    CREATE UNIQUE INDEX experiments_one_running ON experiments (tenant_id, flow_id) WHERE status = 'running';

    -- one row per experiment run, counted from its events as they are recorded (same transaction)
    CREATE TABLE experiment_runs (
        tenant_id TEXT NOT NULL,
        experiment_id TEXT NOT NULL,
        run TEXT NOT NULL,
        variant TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        first_seen REAL NOT NULL,
        turns INTEGER NOT NULL,
        no_matches INTEGER NOT NULL,
        completed_at REAL,
        turns_to_complete INTEGER,
        PRIMARY KEY (tenant_id, experiment_id, run)
    ) WITHOUT ROWID;
    """,
    """
    -- a claimed timer is leased, not deleted: it stays until the turn that fires it commits (which clears or
    -- replaces it), and if the firing process dies first, another fires it once the lease has passed
    ALTER TABLE timers ADD COLUMN claimed_until REAL;  -- NULL: not claimed
    """,
    """
    -- what an operator granted the tenant (secret names, outbound addresses, size limits); NULL: nothing
    ALTER TABLE tenants ADD COLUMN grants TEXT;  -- JSON object
    """,
    """
    -- the key that signs the tenant's outbound webhook bodies (HMAC-SHA256); NULL: unsigned
    ALTER TABLE tenants ADD COLUMN webhook_secret TEXT;

    -- a timer's messages until the tenant's webhook acknowledged them (2xx): each attempt leases the row
    -- (next_at moves past the attempt), a failed one sets when to try again, a success deletes it
    CREATE TABLE outbound_deliveries (
        delivery_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        body BLOB NOT NULL,  -- the exact bytes POSTed (and signed) on every attempt
        attempts INTEGER NOT NULL,
        next_at REAL NOT NULL,
        created_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX outbound_deliveries_by_due ON outbound_deliveries (next_at);
    """,
    """
    -- the catalogue's stamp (Store.catalogue_stamp): counts every change to what a new run looks up, made by
    -- any process on the file, in the changing transaction itself
    CREATE TABLE catalogue_stamp (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
    INSERT INTO catalogue_stamp (id, n) VALUES (1, 0);
    """
    + "".join(
        f"CREATE TRIGGER {table}_{change.lower()}_stamp AFTER {change} ON {table}"
        " BEGIN UPDATE catalogue_stamp SET n = n + 1; END;\n"
        for table in ("tenants", "flow_versions", "experiments")
        for change in ("INSERT", "UPDATE", "DELETE")
    ),
    """
    -- events are written once: a turn's events only in its history rows, which also serve the event queries
    -- (Store.events) by tenant and type; an event recorded outside a turn (Store.record_events: an abandoned
    -- turn's error, a plugin's analytics event) is a history row too, but not part of its conversation's
    -- history (in_history 0). The events table's rows that were not copies of history rows move here.
    ALTER TABLE history ADD COLUMN type TEXT;
    ALTER TABLE history ADD COLUMN in_history INTEGER NOT NULL DEFAULT 1;
    UPDATE history SET type = json_extract(CAST(event AS TEXT), '$.type');
    INSERT INTO history (tenant_id, conversation_id, event, type, in_history)
        SELECT e.tenant_id, coalesce(json_extract(CAST(e.event AS TEXT), '$.conversation_id'), ''), e.event,
            e.type, 0 FROM events e
        WHERE NOT EXISTS (SELECT 1 FROM history h WHERE h.tenant_id = e.tenant_id
            AND h.conversation_id = json_extract(CAST(e.event AS TEXT), '$.conversation_id')
            AND h.event = e.event)
        ORDER BY e.seq;
    DROP TABLE events;
    CREATE INDEX history_by_tenant ON history (tenant_id, seq);
    CREATE INDEX history_by_type ON history (tenant_id, type, seq);
    """,
    """
    -- the embedded store favours the turn: a (tenant, type) index made every turn write one more page per
    -- kind of event it recorded (~6 of the pizza turn's ~11, 30 % of its SQLite time); a query by type now
    -- reads the tenant's events after its cursor in order (history_by_tenant) and keeps those of the type
    DROP INDEX history_by_type;
    """,
]


def statements(script: str) -> Iterator[str]:
    """Split a script into statements (``executescript`` would commit the open transaction first)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()[:80]!r}")


async def migrate(db: aiosqlite.Connection) -> None:
    """Apply the migrations the file lacks (none, when it is current)."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")
        rows = list(await db.execute_fetchall("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
        current = int(rows[0][0])
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in statements(script):
                await db.execute(statement)
            await db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
