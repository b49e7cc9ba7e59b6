-- Streaming sessions, their connections and tags, the agents' command queue, quota limits
-- (SPEC-wave2 §1.1), and the org's templates with their favorites (§2.1; sessions start from a
-- template). Times are ms since the epoch. Nothing here cascades: commands outlive their agent
-- (history), and are purged by the maintenance route.

CREATE TABLE templates (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        name TEXT NOT NULL,
        display_name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        category TEXT NOT NULL DEFAULT '',
        app_type TEXT NOT NULL CHECK (app_type IN ('desktop', 'webapp')),
        icon_url TEXT NOT NULL DEFAULT '',
        base_image TEXT NOT NULL,
        default_cpu TEXT NOT NULL,
        default_memory TEXT NOT NULL,
        streaming_protocol TEXT NOT NULL DEFAULT 'vnc',
        streaming_port INTEGER NOT NULL DEFAULT 5900,
        streaming_path TEXT NOT NULL DEFAULT '',
        manifest TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        enabled INTEGER NOT NULL DEFAULT 1,
        source TEXT NOT NULL CHECK (source IN ('manual', 'catalog')),
        catalog_template_id TEXT,
        install_count INTEGER NOT NULL DEFAULT 0,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (org_id, name)
    ) STRICT;

CREATE INDEX templates_org_created ON templates (org_id, created_at);

CREATE TABLE template_favorites (
        user_id TEXT NOT NULL,
        template_id TEXT NOT NULL,
        org_id TEXT NOT NULL,
        favorited_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, template_id)
    ) STRICT, WITHOUT ROWID;

CREATE INDEX template_favorites_template ON template_favorites (template_id);

CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        team_id TEXT,
        name TEXT NOT NULL,
        template_id TEXT NOT NULL,
        template_name TEXT NOT NULL,
        app_type TEXT NOT NULL DEFAULT 'desktop' CHECK (app_type IN ('desktop', 'webapp')),
        state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'hibernating', 'hibernated',
                                             'waking', 'terminating', 'terminated', 'failed')),
        cpu TEXT NOT NULL,
        cpu_millicores INTEGER NOT NULL,
        memory TEXT NOT NULL,
        memory_bytes INTEGER NOT NULL,
        gpu INTEGER NOT NULL DEFAULT 0,
        persistent_home INTEGER NOT NULL DEFAULT 1,
        idle_timeout_s INTEGER,
        max_duration_s INTEGER,
        agent_id TEXT,
        url TEXT,
        streaming_protocol TEXT NOT NULL DEFAULT 'vnc',
        streaming_port INTEGER NOT NULL DEFAULT 5900,
        streaming_path TEXT NOT NULL DEFAULT '',
        platform_metadata TEXT NOT NULL DEFAULT '{}',
        termination_reason TEXT,
        stop_retries INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        state_changed_at INTEGER NOT NULL,
        started_at INTEGER,
        last_activity_at INTEGER,
        last_connection_at INTEGER,
        last_disconnect_at INTEGER,
        terminated_at INTEGER
    ) STRICT;

CREATE INDEX sessions_user_state ON sessions (user_id, state);

CREATE INDEX sessions_org_state ON sessions (org_id, state, created_at);

CREATE INDEX sessions_org_created ON sessions (org_id, created_at, id);

CREATE INDEX sessions_agent_state ON sessions (agent_id, state);

CREATE TABLE session_tags (
        session_id TEXT NOT NULL,
        org_id TEXT NOT NULL,
        tag TEXT NOT NULL,
        PRIMARY KEY (session_id, tag)
    ) STRICT, WITHOUT ROWID;

CREATE INDEX session_tags_org_tag ON session_tags (org_id, tag);

CREATE TABLE session_connections (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        org_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        client_ip TEXT,
        user_agent TEXT,
        connected_at INTEGER NOT NULL,
        last_heartbeat_at INTEGER NOT NULL,
        disconnected_at INTEGER
    ) STRICT;

CREATE INDEX session_connections_live
    ON session_connections (session_id, disconnected_at, last_heartbeat_at);

CREATE TABLE agent_commands (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        org_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        session_id TEXT,
        action TEXT NOT NULL CHECK (action IN ('start_session', 'stop_session',
                                               'hibernate_session', 'wake_session')),
        payload TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'leased', 'acknowledged', 'completed',
                                               'failed', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        lease_expires_at INTEGER,
        result TEXT,
        error_message TEXT,
        created_at INTEGER NOT NULL,
        first_delivered_at INTEGER,
        acknowledged_at INTEGER,
        completed_at INTEGER,
        updated_at INTEGER NOT NULL
    ) STRICT;

CREATE INDEX agent_commands_agent ON agent_commands (agent_id, status, seq);

CREATE INDEX agent_commands_session ON agent_commands (session_id, seq);

-- user_id '' is the org's defaults row; a NULL limit inherits (user row → org row → built-in).
CREATE TABLE quota_limits (
        org_id TEXT NOT NULL,
        user_id TEXT NOT NULL DEFAULT '',
        max_sessions INTEGER,
        max_cpu_millicores INTEGER,
        max_memory_bytes INTEGER,
        max_gpu INTEGER,
        max_storage_bytes INTEGER,
        max_cpu_per_session INTEGER,
        max_memory_per_session INTEGER,
        max_gpu_per_session INTEGER,
        updated_at INTEGER NOT NULL,
        updated_by TEXT NOT NULL,
        PRIMARY KEY (org_id, user_id)
    ) STRICT, WITHOUT ROWID;
