-- Inbound webhook deliveries (SPEC-wave2 §3.1, §3.5): only deliveries whose signature verified
-- are stored (unauthenticated traffic cannot fill the table), deduplicated per source on the
-- sender's delivery id, replayable from the stored body, purged after
-- `webhook_delivery_retention_days`.
--
-- `org_id` is the owning org (a repository's own GitHub route) or NULL (deployment-wide secrets:
-- the platform admin's). `source`: `github`, `github:<repository_id>`, `plain` or
-- `standard:<name>`. `delivery_id`: `X-GitHub-Delivery`, `webhook-id`, or the row's own id for
-- the plain form (which carries none, so it is never deduplicated). `headers`: a JSON object of
-- the delivery's headers with signatures redacted. `body`: the raw bytes, at most 256 KiB
-- (`body_truncated` when cut; such a delivery cannot be replayed).

CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        org_id TEXT,
        source TEXT NOT NULL,
        delivery_id TEXT NOT NULL,
        event TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('accepted', 'ignored', 'failed')),
        http_status INTEGER NOT NULL,
        repository_ids TEXT NOT NULL DEFAULT '[]',
        headers TEXT NOT NULL DEFAULT '{}',
        body BLOB NOT NULL,
        body_truncated INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 1,
        error TEXT,
        received_at INTEGER NOT NULL,
        processed_at INTEGER,
        UNIQUE (source, delivery_id)
) STRICT;

CREATE INDEX webhook_deliveries_org_received ON webhook_deliveries (org_id, received_at);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);
