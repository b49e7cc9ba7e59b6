-- Streaming agents (their API keys as SHA-256), one-time connection tickets, the license.

CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        name TEXT NOT NULL,
        platform TEXT NOT NULL,
        region TEXT NOT NULL DEFAULT '',
        api_key_hash TEXT NOT NULL UNIQUE,
        api_key_last_used_at INTEGER,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'online', 'draining', 'offline')),
        capacity TEXT NOT NULL DEFAULT '{}',
        registered_at INTEGER,
        last_heartbeat_at INTEGER,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER,
        UNIQUE (org_id, name)
    ) STRICT;

CREATE TABLE tickets (
        ticket_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        org_id TEXT NOT NULL,
        purpose TEXT NOT NULL,
        session_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;

CREATE TABLE licenses (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        license_key TEXT NOT NULL,
        activated_at INTEGER NOT NULL,
        activated_by TEXT NOT NULL
    ) STRICT;
