-- The catalog (SPEC-wave2 §2.1): git repositories of template manifests synced over GitHub's
-- HTTP API, the catalog templates they hold, and a per-blob parse memo so an unchanged file is
-- never fetched twice. The org's usable templates are `templates` (migration 10); installing a
-- catalog template copies it there.

CREATE TABLE repositories (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        name TEXT NOT NULL,
        url TEXT NOT NULL,
        url_key TEXT NOT NULL,
        branch TEXT NOT NULL DEFAULT 'main',
        type TEXT NOT NULL DEFAULT 'template',
        auth_type TEXT NOT NULL DEFAULT 'none' CHECK (auth_type IN ('none', 'token', 'basic')),
        auth_secret_sealed BLOB,
        webhook_secret_sealed BLOB,
        previous_webhook_secret_sealed BLOB,
        previous_webhook_secret_expires_at INTEGER,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'syncing', 'synced', 'failed')),
        last_sync_at INTEGER,
        last_sync_commit TEXT,
        template_count INTEGER NOT NULL DEFAULT 0,
        error_message TEXT,
        sync_warnings TEXT NOT NULL DEFAULT '[]',
        sync_requested_at INTEGER,
        sync_lease_until INTEGER,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (org_id, name),
        UNIQUE (org_id, url_key, branch)
    ) STRICT;

CREATE INDEX repositories_url_key ON repositories (url_key);

CREATE TABLE catalog_templates (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        repository_id TEXT NOT NULL,
        name TEXT NOT NULL,
        display_name TEXT NOT NULL,
        description TEXT NOT NULL,
        category TEXT NOT NULL,
        app_type TEXT NOT NULL,
        icon_url TEXT NOT NULL,
        base_image TEXT NOT NULL,
        tags TEXT NOT NULL,
        version TEXT NOT NULL DEFAULT '1.0.0',
        manifest TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        source_path TEXT NOT NULL,
        install_count INTEGER NOT NULL DEFAULT 0,
        view_count INTEGER NOT NULL DEFAULT 0,
        is_featured INTEGER NOT NULL DEFAULT 0,
        avg_rating REAL NOT NULL DEFAULT 0,
        rating_count INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (repository_id, name)
    ) STRICT;

CREATE INDEX catalog_templates_org ON catalog_templates (org_id, name);

CREATE TABLE repository_files (
        repository_id TEXT NOT NULL,
        path TEXT NOT NULL,
        blob_sha TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('template', 'ignored', 'invalid')),
        detail TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (repository_id, path)
    ) STRICT, WITHOUT ROWID;
