-- Accounts, orgs, login sessions, tokens (hashes only), API keys, teams, MFA, CSRF.
--
-- Times are milliseconds since the Unix epoch. Every secret column holds a SHA-256 (tokens) or an
-- argon2id PHC string (passwords), never the secret. Foreign keys are documented, not enforced
-- (enforcement needs a pragma on every connection); deletes are explicit, in one transaction.

CREATE TABLE orgs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        display_name TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;

CREATE TABLE users (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'user', 'auditor')),
        status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
        platform_admin INTEGER NOT NULL DEFAULT 0,
        mfa_secret TEXT,
        mfa_enabled INTEGER NOT NULL DEFAULT 0,
        mfa_last_step INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;

CREATE INDEX users_org ON users (org_id);

CREATE TABLE login_sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        org_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER,
        revoke_reason TEXT,
        created_ip TEXT,
        user_agent TEXT,
        cookie INTEGER NOT NULL DEFAULT 0
    ) STRICT;

CREATE INDEX login_sessions_user ON login_sessions (user_id, revoked_at);

CREATE TABLE access_tokens (
        token_hash TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;

CREATE INDEX access_tokens_session ON access_tokens (session_id);

CREATE TABLE refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    ) STRICT, WITHOUT ROWID;

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        org_id TEXT NOT NULL,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        expires_at INTEGER,
        created_at INTEGER NOT NULL,
        created_ip TEXT,
        user_agent TEXT,
        last_used_at INTEGER,
        use_count INTEGER NOT NULL DEFAULT 0,
        revoked_at INTEGER
    ) STRICT;

CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE teams (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        UNIQUE (org_id, name)
    ) STRICT;

CREATE TABLE team_members (
        team_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        role TEXT NOT NULL,
        added_at INTEGER NOT NULL,
        PRIMARY KEY (team_id, user_id)
    ) STRICT, WITHOUT ROWID;

CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE team_role_permissions (
        role TEXT NOT NULL,
        permission TEXT NOT NULL,
        PRIMARY KEY (role, permission)
    ) STRICT, WITHOUT ROWID;

INSERT INTO team_role_permissions (role, permission) VALUES
        ('admin', 'sessions.view'), ('admin', 'sessions.create'), ('admin', 'sessions.delete'),
        ('admin', 'sessions.share'), ('admin', 'team.manage'), ('admin', 'team.billing'),
        ('member', 'sessions.view'), ('member', 'sessions.create'), ('member', 'sessions.share'),
        ('viewer', 'sessions.view');

CREATE TABLE mfa_backup_codes (
        user_id TEXT NOT NULL,
        code_hash TEXT NOT NULL,
        used_at INTEGER,
        PRIMARY KEY (user_id, code_hash)
    ) STRICT, WITHOUT ROWID;

CREATE TABLE csrf_tokens (
        token_hash TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
