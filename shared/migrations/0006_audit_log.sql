-- The audit log: one row per request, hash-chained (`hash = HMAC-SHA256(audit_key, prev_hash ‖
-- canonical row)`), append-only by trigger; rows leave only through retention, which opens the
-- gate inside its transaction and records a checkpoint so the rest of the chain still verifies.

CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        request_id TEXT NOT NULL UNIQUE,
        ts INTEGER NOT NULL,
        principal TEXT,
        user_id TEXT,
        agent_id TEXT,
        org_id TEXT,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        action TEXT NOT NULL,
        resource_type TEXT,
        resource_id TEXT,
        status INTEGER NOT NULL,
        client_ip TEXT,
        user_agent TEXT,
        duration_ms REAL NOT NULL,
        error TEXT,
        body TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    ) STRICT;

CREATE INDEX audit_log_org_seq ON audit_log (org_id, seq);

CREATE INDEX audit_log_ts ON audit_log (ts);

CREATE TABLE audit_gate (id INTEGER PRIMARY KEY CHECK (id = 1), open INTEGER NOT NULL) STRICT;

INSERT INTO audit_gate (id, open) VALUES (1, 0);

CREATE TABLE audit_checkpoints (
        seq INTEGER PRIMARY KEY,
        prev_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        removed_through INTEGER NOT NULL,
        removed_count INTEGER NOT NULL
    ) STRICT;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
     BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
     WHEN (SELECT open FROM audit_gate WHERE id = 1) = 0
     BEGIN SELECT RAISE(ABORT, 'audit_log rows leave only through retention'); END;
