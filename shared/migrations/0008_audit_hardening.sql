-- Audit hardening: checkpoints carry a MAC chained to the previous checkpoint's (verify checks
-- them, so a checkpoint inserted with file access is found); a row names the org a handler acted
-- on when it is not the actor's own (`target_org_id`, hashed only when present so older rows
-- still verify); the incremental verifier's position (one row: the last verified `seq`, that
-- row's hash and a MAC over both).

ALTER TABLE audit_checkpoints ADD COLUMN mac TEXT;

ALTER TABLE audit_log ADD COLUMN target_org_id TEXT;

CREATE INDEX audit_log_target_org_seq ON audit_log (target_org_id, seq)
     WHERE target_org_id IS NOT NULL;

CREATE TABLE audit_verify_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        mac TEXT NOT NULL,
        verified_at INTEGER NOT NULL
    ) STRICT;
