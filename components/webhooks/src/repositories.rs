//! Catalog repositories: rows, views, input and the org-scoped queries behind
//! `/api/v1/catalog/repositories` (SPEC-wave2 §2.3, Decision 3).
//!
//! - Every query filters by the caller's org, so a repository of another org is not found (404).
//! - The URL guard and the ref rules are `shared::repositories` (the sync reads the same URLs).
//! - Secrets (the git credential and the GitHub webhook secret) are sealed with
//!   `shared::secrets::seal` under `repository_secret_key` before they reach the store, and never
//!   leave it again through this API: views carry `has_auth_secret` / `has_webhook_secret` only. A
//!   new webhook secret is shown once, in the answer that created it.

use serde::Serialize;
use serde_json::Value;
use shared::auth::Tenant;
use shared::ids::hex;
use shared::pagination::{asc, Page, PageRequest, Paged};
use shared::repositories::{self as repos, RepoUrl, WEBHOOK_SECRET_GRACE_MS};
use shared::secrets::seal::{self, SealKey, PURPOSE_AUTH_SECRET, PURPOSE_WEBHOOK_SECRET};
use shared::services::Services;
use shared::store::{Database, Row, StoreError, Value as Sql};
use shared::time::Timestamp;
use shared::{ApiError, ApiResult};

/// The longest git credential (`auth_secret`).
pub const AUTH_SECRET_MAX_CHARS: usize = 1024;
/// Random bytes in a webhook secret (shown as 64 hex digits).
pub const WEBHOOK_SECRET_BYTES: usize = 32;

/// What clients see of a repository. No secret ever appears here.
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryView {
    pub id: String,
    pub name: String,
    pub url: String,
    pub branch: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub auth_type: String,
    pub has_auth_secret: bool,
    pub has_webhook_secret: bool,
    /// Where GitHub posts this repository's pushes (Decision 3).
    pub webhook_url: String,
    pub status: String,
    pub last_sync_at: Option<Timestamp>,
    pub last_sync_commit: Option<String>,
    pub template_count: i64,
    pub error_message: Option<String>,
    pub sync_warnings: Value,
    pub sync_requested_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Only in the answer to `POST /catalog/repositories`: the webhook secret, shown once
    /// (`null` when no `repository_secret_key` is set: see [`create`]). Absent everywhere else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<Option<String>>,
}

/// The answer to `POST /catalog/repositories/{id}/webhook-secret`.
#[derive(Debug, Clone, Serialize)]
pub struct RotatedSecret {
    pub repository_id: String,
    pub webhook_secret: String,
    pub webhook_url: String,
    /// Until when the previous secret still verifies (`null` when there was none).
    pub previous_secret_expires_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, name, url, branch, type, auth_type,
    auth_secret_sealed IS NOT NULL AS has_auth_secret,
    webhook_secret_sealed IS NOT NULL AS has_webhook_secret,
    status, last_sync_at, last_sync_commit, template_count, error_message, sync_warnings,
    sync_requested_at, created_at, updated_at";

impl RepositoryView {
    fn from_row(row: &Row<'_>) -> Result<Self, StoreError> {
        let id = row.str("id")?.to_owned();
        Ok(Self {
            webhook_url: repos::webhook_path(&id),
            id,
            name: row.str("name")?.to_owned(),
            url: row.str("url")?.to_owned(),
            branch: row.str("branch")?.to_owned(),
            kind: row.str("type")?.to_owned(),
            auth_type: row.str("auth_type")?.to_owned(),
            has_auth_secret: row.i64("has_auth_secret")? != 0,
            has_webhook_secret: row.i64("has_webhook_secret")? != 0,
            status: row.str("status")?.to_owned(),
            last_sync_at: row.opt_i64("last_sync_at")?.map(Timestamp::from_ms),
            last_sync_commit: row.opt_str("last_sync_commit")?.map(str::to_owned),
            template_count: row.i64("template_count")?,
            error_message: row.opt_str("error_message")?.map(str::to_owned),
            sync_warnings: serde_json::from_str(row.str("sync_warnings")?)
                .unwrap_or_else(|_| Value::Array(Vec::new())),
            sync_requested_at: row.opt_i64("sync_requested_at")?.map(Timestamp::from_ms),
            created_at: Timestamp::from_ms(row.i64("created_at")?),
            updated_at: Timestamp::from_ms(row.i64("updated_at")?),
            webhook_secret: None,
        })
    }
}

pub fn not_found() -> ApiError {
    ApiError::not_found("no such repository")
}

fn name_taken() -> ApiError {
    ApiError::conflict("name_taken", "a repository with this name already exists")
}

fn repository_exists() -> ApiError {
    ApiError::conflict(
        "repository_exists",
        "this repository and branch are already in the catalog",
    )
}

fn invalid_field(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_field", message)
}

fn secret_storage_unavailable() -> ApiError {
    ApiError::bad_request(
        "secret_storage_unavailable",
        "secrets cannot be stored: repository_secret_key is not configured",
    )
}

/// A repository of the org, 404 for any other.
pub fn find(db: &Database, tenant: &Tenant, id: &str) -> ApiResult<RepositoryView> {
    let rows = db.execute(
        &format!("SELECT {COLUMNS} FROM repositories WHERE id = ? AND org_id = ?"),
        &[Sql::from(id), Sql::from(tenant.org_id())],
    )?;
    let row = rows.first().ok_or_else(not_found)?;
    Ok(RepositoryView::from_row(&row)?)
}

/// The org's repositories by name (then id), paginated.
pub fn list(db: &Database, tenant: &Tenant, page: &PageRequest) -> ApiResult<Page<RepositoryView>> {
    let mut q = Paged::new(format!("SELECT {COLUMNS} FROM repositories"));
    let org = q.bind(tenant.org_id());
    q.and(format!("org_id = {org}"));
    q.fetch(
        db,
        page,
        &[asc("name"), asc("id")],
        RepositoryView::from_row,
        |r| (r.name.clone(), r.id.clone()),
    )
}

/// The body of `POST /catalog/repositories`, read from a JSON value by [`CreateRepository::parse`]
/// (unknown fields refused, as everywhere): a derived `Deserialize` costs ~7 KB of WebAssembly
/// in a component at its size budget. `Debug` never shows the secret.
#[derive(Default)]
pub struct CreateRepository {
    pub name: String,
    pub url: String,
    pub branch: Option<String>,
    pub auth_type: Option<String>,
    pub auth_secret: Option<String>,
}

impl std::fmt::Debug for CreateRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateRepository")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("auth_type", &self.auth_type)
            .field(
                "auth_secret",
                &self.auth_secret.as_ref().map(|_| "**redacted**"),
            )
            .finish()
    }
}

/// A checked `POST /catalog/repositories` body.
pub struct NewRepository {
    pub name: String,
    pub url: String,
    pub location: RepoUrl,
    pub branch: String,
    pub auth_type: &'static str,
    pub auth_secret: Option<String>,
}

/// Checks an auth type and its secret (SPEC-wave2 §2.3): `none` forbids a secret, `token` needs
/// 1–1024 characters, `basic` needs `user:pass`; `ssh` is 400 `unsupported_auth_type`. A secret
/// never holds control characters (it becomes an `Authorization` header) and is never echoed.
pub fn check_auth(
    auth_type: Option<&str>,
    secret: Option<&str>,
) -> ApiResult<(&'static str, Option<String>)> {
    let kind = match auth_type.unwrap_or("none") {
        "none" => "none",
        "token" => "token",
        "basic" => "basic",
        "ssh" => return Err(ApiError::bad_request(
            "unsupported_auth_type",
            "auth_type ssh is not supported (no git or ssh on Spin): use token or basic over https",
        )),
        _ => return Err(invalid_field("auth_type must be none, token or basic")),
    };
    let secret = secret.filter(|s| !s.is_empty());
    match (kind, secret) {
        ("none", None) => Ok((kind, None)),
        ("none", Some(_)) => Err(invalid_field(
            "auth_secret is not allowed with auth_type none",
        )),
        (_, None) => Err(invalid_field(format!("auth_type {kind} needs auth_secret"))),
        (_, Some(secret)) => {
            if secret.chars().count() > AUTH_SECRET_MAX_CHARS {
                return Err(invalid_field("auth_secret must be 1-1024 characters"));
            }
            if secret.chars().any(char::is_control) {
                return Err(invalid_field(
                    "auth_secret must not contain control characters",
                ));
            }
            let has_user = secret
                .split_once(':')
                .is_some_and(|(user, _)| !user.is_empty());
            if kind == "basic" && !has_user {
                return Err(invalid_field(
                    "auth_secret for basic must be \"user:password\"",
                ));
            }
            Ok((kind, Some(secret.to_owned())))
        }
    }
}

impl CreateRepository {
    /// Reads the body: an object of `name`, `url` (strings, required), `branch`, `auth_type`,
    /// `auth_secret` (strings or null). 400 `unknown_field` / `invalid_field` otherwise.
    pub fn parse(body: Value) -> ApiResult<Self> {
        let Value::Object(fields) = body else {
            return Err(invalid_field("the body must be a JSON object"));
        };
        let mut out = Self::default();
        let (mut name, mut url) = (None, None);
        for (key, value) in fields {
            let slot = match key.as_str() {
                "name" => &mut name,
                "url" => &mut url,
                "branch" => &mut out.branch,
                "auth_type" => &mut out.auth_type,
                "auth_secret" => &mut out.auth_secret,
                _ => {
                    return Err(ApiError::bad_request(
                        "unknown_field",
                        format!("unknown field `{key}`"),
                    ))
                }
            };
            *slot = match value {
                Value::Null => None,
                Value::String(text) => Some(text),
                _ => return Err(invalid_field(format!("field `{key}` must be a string"))),
            };
        }
        out.name = name.ok_or_else(|| invalid_field("missing field `name`"))?;
        out.url = url.ok_or_else(|| invalid_field("missing field `url`"))?;
        Ok(out)
    }

    /// Validates in the order name → url → branch → auth (SPEC-wave2 §2.3).
    pub fn check(self, hosts: &str) -> ApiResult<NewRepository> {
        let name = shared::agents::check_label(&self.name, "name", false).map_err(invalid_field)?;
        let url = self.url.trim().to_owned();
        let location =
            repos::parse_url(&url, hosts).map_err(|e| ApiError::bad_request("invalid_url", e))?;
        let branch = self.branch.unwrap_or_else(|| "main".to_owned());
        repos::check_branch(&branch).map_err(invalid_field)?;
        let (auth_type, auth_secret) =
            check_auth(self.auth_type.as_deref(), self.auth_secret.as_deref())?;
        Ok(NewRepository {
            name,
            url,
            location,
            branch,
            auth_type,
            auth_secret,
        })
    }
}

/// A fresh webhook secret: 32 random bytes as 64 lowercase hex digits (the text GitHub is given
/// and signs with).
fn new_webhook_secret(services: &Services) -> ApiResult<String> {
    let mut bytes = [0u8; WEBHOOK_SECRET_BYTES];
    services.random.fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// Inserts a repository (`pending`, sync requested now) with its sealed secrets.
///
/// - A git credential without `repository_secret_key` → 400 `secret_storage_unavailable` (fail
///   closed: it is never stored in the clear).
/// - Without the key the repository still gets created, for public repositories, but has no
///   webhook secret (`webhook_secret: null`); rotating once the key is set gives it one.
/// - 409 `name_taken` / `repository_exists`, checked with the insert in one transaction.
pub fn create(
    db: &Database,
    services: &Services,
    tenant: &Tenant,
    id: &str,
    input: &NewRepository,
    created_by: &str,
) -> ApiResult<RepositoryView> {
    let key = SealKey::from_settings(&services.settings())?;
    let auth_sealed = match (&input.auth_secret, &key) {
        (None, _) => None,
        (Some(_), None) => return Err(secret_storage_unavailable()),
        (Some(secret), Some(key)) => Some(seal::seal(
            key,
            services.random.as_ref(),
            PURPOSE_AUTH_SECRET,
            id,
            secret.as_bytes(),
        )?),
    };
    let (webhook_secret, webhook_sealed) = match &key {
        None => (None, None),
        Some(key) => {
            let secret = new_webhook_secret(services)?;
            let sealed = seal::seal(
                key,
                services.random.as_ref(),
                PURPOSE_WEBHOOK_SECRET,
                id,
                secret.as_bytes(),
            )?;
            (Some(secret), Some(sealed))
        }
    };
    let blob = |b: &Option<Vec<u8>>| b.clone().map_or(Sql::Null, Sql::Blob);
    let now = services.now_ms();
    let org = tenant.org_id();
    db.transaction(|db| {
        let clash = db.execute(
            "SELECT name = ? AS same_name FROM repositories
              WHERE org_id = ? AND (name = ? OR (url_key = ? AND branch = ?))
              ORDER BY same_name DESC LIMIT 1",
            &[
                Sql::from(input.name.as_str()),
                Sql::from(org),
                Sql::from(input.name.as_str()),
                Sql::from(input.location.url_key.as_str()),
                Sql::from(input.branch.as_str()),
            ],
        )?;
        if let Some(row) = clash.first() {
            return Err(if row.i64("same_name")? != 0 {
                name_taken()
            } else {
                repository_exists()
            });
        }
        db.execute(
            "INSERT INTO repositories (id, org_id, name, url, url_key, branch, auth_type,
                 auth_secret_sealed, webhook_secret_sealed, status, sync_requested_at, created_by,
                 created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
            &[
                Sql::from(id),
                Sql::from(org),
                Sql::from(input.name.as_str()),
                Sql::from(input.url.as_str()),
                Sql::from(input.location.url_key.as_str()),
                Sql::from(input.branch.as_str()),
                Sql::from(input.auth_type),
                blob(&auth_sealed),
                blob(&webhook_sealed),
                Sql::from(now),
                Sql::from(created_by),
                Sql::from(now),
                Sql::from(now),
            ],
        )
        .map_err(|e| {
            ApiError::from(e).conflict_on_unique(
                "repository_exists",
                "this repository and branch are already in the catalog",
            )
        })?;
        Ok::<_, ApiError>(())
    })?;
    let mut created = find(db, tenant, id)?;
    created.webhook_secret = Some(webhook_secret);
    Ok(created)
}

/// Deletes a repository with its catalog templates and parse memo; installed templates keep
/// their rows with `catalog_template_id` NULL. 404 when it is not in the org.
pub fn delete(db: &Database, tenant: &Tenant, id: &str, now_ms: i64) -> ApiResult<()> {
    let org = tenant.org_id();
    db.transaction(|db| {
        db.execute(
            "DELETE FROM repositories WHERE id = ? AND org_id = ?",
            &[Sql::from(id), Sql::from(org)],
        )?;
        if db.changes()? == 0 {
            return Err(not_found());
        }
        db.execute(
            "UPDATE templates SET catalog_template_id = NULL, updated_at = ?
              WHERE org_id = ? AND catalog_template_id IN
                    (SELECT id FROM catalog_templates WHERE repository_id = ?)",
            &[Sql::from(now_ms), Sql::from(org), Sql::from(id)],
        )?;
        db.execute(
            "DELETE FROM catalog_templates WHERE repository_id = ?",
            &[Sql::from(id)],
        )?;
        db.execute(
            "DELETE FROM repository_files WHERE repository_id = ?",
            &[Sql::from(id)],
        )?;
        Ok(())
    })
}

/// Gives a repository a new webhook secret, shown once. The previous one keeps verifying for
/// 24 h (a second rotation within that time ends the older one's grace at once). Needs
/// `repository_secret_key` (400 `secret_storage_unavailable`); 404 when not in the org.
pub fn rotate_webhook_secret(
    db: &Database,
    services: &Services,
    tenant: &Tenant,
    id: &str,
) -> ApiResult<RotatedSecret> {
    let current = find(db, tenant, id)?;
    let key =
        SealKey::from_settings(&services.settings())?.ok_or_else(secret_storage_unavailable)?;
    let secret = new_webhook_secret(services)?;
    let sealed = seal::seal(
        &key,
        services.random.as_ref(),
        PURPOSE_WEBHOOK_SECRET,
        &current.id,
        secret.as_bytes(),
    )?;
    let now = services.now_ms();
    let rows = db.execute(
        "UPDATE repositories
            SET previous_webhook_secret_sealed = webhook_secret_sealed,
                previous_webhook_secret_expires_at =
                    CASE WHEN webhook_secret_sealed IS NULL THEN NULL ELSE ? END,
                webhook_secret_sealed = ?, updated_at = ?
          WHERE id = ? AND org_id = ?
          RETURNING previous_webhook_secret_expires_at",
        &[
            Sql::from(now + WEBHOOK_SECRET_GRACE_MS),
            Sql::Blob(sealed),
            Sql::from(now),
            Sql::from(current.id.as_str()),
            Sql::from(tenant.org_id()),
        ],
    )?;
    let row = rows.first().ok_or_else(not_found)?;
    Ok(RotatedSecret {
        webhook_url: repos::webhook_path(&current.id),
        repository_id: current.id,
        webhook_secret: secret,
        previous_secret_expires_at: row
            .opt_i64("previous_webhook_secret_expires_at")?
            .map(Timestamp::from_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::auth::Role;
    use shared::testing::{principal, TestStores};

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn new_repo(url: &str, auth: Option<(&str, &str)>) -> NewRepository {
        let mut v = serde_json::json!({"name": url.rsplit('/').next().unwrap(), "url": url});
        if let Some((t, s)) = auth {
            v["auth_type"] = t.into();
            v["auth_secret"] = s.into();
        }
        body(v).check("github.com").unwrap()
    }

    fn sealed(db: &Database, id: &str, column: &str) -> Option<Vec<u8>> {
        let rows = db
            .execute(
                &format!("SELECT {column} AS b FROM repositories WHERE id = ?"),
                &[Sql::from(id)],
            )
            .unwrap();
        match rows.first().unwrap().value("b").unwrap() {
            Sql::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }

    #[test]
    fn secrets_are_sealed_to_their_row_and_rotation_keeps_the_previous_one_for_24h() {
        let s = TestStores::new();
        s.variables.set("repository_secret_key", KEY);
        let services = s.services();
        let db = services.db().unwrap();
        let tenant = principal("u1", "org-a", Role::Admin).tenant();
        let a = create(
            db,
            &services,
            &tenant,
            "repo-a",
            &new_repo(
                "https://github.com/o/a",
                Some(("token", "ghp_plaintext_token")),
            ),
            "u1",
        )
        .unwrap();
        let b = create(
            db,
            &services,
            &tenant,
            "repo-b",
            &new_repo("https://github.com/o/b", None),
            "u1",
        )
        .unwrap();
        assert!(a.has_auth_secret && a.has_webhook_secret);
        assert!(!b.has_auth_secret);
        let first = a.webhook_secret.clone().flatten().unwrap();
        assert_eq!(first.len(), 64);

        // At rest: sealed, no plaintext, and opened only with the documented associated data.
        let auth = sealed(db, "repo-a", "auth_secret_sealed").unwrap();
        assert!(!auth.windows(8).any(|w| w == b"ghp_plai"));
        let key = seal::parse_key(KEY).unwrap();
        assert_eq!(
            seal::open(&key, PURPOSE_AUTH_SECRET, "repo-a", &auth).unwrap(),
            b"ghp_plaintext_token"
        );
        // Copied into another row, it does not open (and the sync would refuse it).
        assert!(seal::open(&key, PURPOSE_AUTH_SECRET, "repo-b", &auth).is_err());
        let hook = sealed(db, "repo-a", "webhook_secret_sealed").unwrap();
        assert!(seal::open(&key, PURPOSE_AUTH_SECRET, "repo-a", &hook).is_err());

        let secrets = |services: &Services| {
            shared::repositories::webhook_secrets(services.db().unwrap(), services, "repo-a")
                .unwrap()
        };
        assert_eq!(secrets(&services), vec![first.as_bytes().to_vec()]);
        let rotated = rotate_webhook_secret(db, &services, &tenant, "repo-a").unwrap();
        assert_ne!(rotated.webhook_secret, first);
        assert_eq!(
            rotated.previous_secret_expires_at.unwrap().as_ms(),
            services.now_ms() + WEBHOOK_SECRET_GRACE_MS
        );
        assert_eq!(
            secrets(&services),
            vec![
                rotated.webhook_secret.as_bytes().to_vec(),
                first.as_bytes().to_vec()
            ]
        );
        s.clock.advance(WEBHOOK_SECRET_GRACE_MS - 1);
        assert_eq!(secrets(&s.services()).len(), 2);
        s.clock.advance(1);
        assert_eq!(
            secrets(&s.services()),
            vec![rotated.webhook_secret.as_bytes().to_vec()]
        );

        // A foreign org neither rotates nor deletes it.
        let other = principal("u2", "org-b", Role::Admin).tenant();
        assert_eq!(
            rotate_webhook_secret(db, &services, &other, "repo-a")
                .unwrap_err()
                .code,
            "not_found"
        );
        assert_eq!(
            delete(db, &other, "repo-a", 0).unwrap_err().code,
            "not_found"
        );

        // Another key: the sealed secrets do not open, and that is a configuration error.
        s.variables.set("repository_secret_key", &"ab".repeat(32));
        let services = s.services();
        let err =
            shared::repositories::webhook_secrets(services.db().unwrap(), &services, "repo-a")
                .unwrap_err();
        assert_eq!(err.code, "configuration_error");
        s.variables.set("repository_secret_key", "");
        let services = s.services();
        let err =
            shared::repositories::webhook_secrets(services.db().unwrap(), &services, "repo-a")
                .unwrap_err();
        assert_eq!(err.code, "configuration_error");
    }

    #[test]
    fn delete_removes_catalog_rows_and_detaches_installed_templates() {
        let s = TestStores::new();
        let services = s.services();
        let db = services.db().unwrap();
        let tenant = principal("u1", "org-a", Role::Admin).tenant();
        let created = create(
            db,
            &services,
            &tenant,
            "repo-a",
            &new_repo("https://github.com/o/a", None),
            "u1",
        )
        .unwrap();
        assert_eq!(
            created.webhook_secret,
            Some(None),
            "no key, no webhook secret"
        );
        assert!(!created.has_webhook_secret);
        let listed = find(db, &tenant, "repo-a").unwrap();
        assert_eq!(
            listed.webhook_secret, None,
            "never outside the create answer"
        );
        db.execute(
            "INSERT INTO catalog_templates (id, org_id, repository_id, name, display_name, description,
                 category, app_type, icon_url, base_image, tags, manifest, manifest_sha256, source_path,
                 created_at, updated_at)
             VALUES ('ct1', 'org-a', 'repo-a', 'gimp', 'GIMP', '', '', 'desktop', '', 'img', '[]', '{}',
                     'sha', 'gimp.yaml', 0, 0)",
            &[],
        )
        .unwrap();
        db.execute(
            "INSERT INTO repository_files (repository_id, path, blob_sha, outcome)
             VALUES ('repo-a', 'gimp.yaml', 'b1', 'template')",
            &[],
        )
        .unwrap();
        db.execute(
            "INSERT INTO templates (id, org_id, name, display_name, description, category, app_type,
                 icon_url, base_image, default_cpu, default_memory, streaming_protocol, streaming_port,
                 streaming_path, manifest, manifest_sha256, tags, enabled, source, catalog_template_id,
                 created_by, created_at, updated_at)
             VALUES ('t1', 'org-a', 'gimp', 'GIMP', '', '', 'desktop', '', 'img', '1', '1Gi', 'vnc',
                     5900, '/', '{}', 'sha', '[]', 1, 'catalog', 'ct1', 'u1', 0, 0)",
            &[],
        )
        .unwrap();
        delete(db, &tenant, "repo-a", 5).unwrap();
        let rows = db
            .execute(
                "SELECT catalog_template_id, updated_at FROM templates WHERE id = 't1'",
                &[],
            )
            .unwrap();
        let row = rows.first().expect("the installed template stays");
        assert_eq!(row.opt_str("catalog_template_id").unwrap(), None);
        assert_eq!(row.i64("updated_at").unwrap(), 5);
        for table in ["catalog_templates", "repository_files", "repositories"] {
            let rows = db
                .execute(&format!("SELECT count(*) AS n FROM {table}"), &[])
                .unwrap();
            assert_eq!(rows.first().unwrap().i64("n").unwrap(), 0, "{table}");
        }
        assert_eq!(
            delete(db, &tenant, "repo-a", 5).unwrap_err().code,
            "not_found"
        );
    }

    fn body(v: serde_json::Value) -> CreateRepository {
        CreateRepository::parse(v).unwrap()
    }

    #[test]
    fn auth_rules() {
        assert_eq!(check_auth(None, None).unwrap(), ("none", None));
        assert_eq!(check_auth(Some("none"), Some("")).unwrap(), ("none", None));
        assert_eq!(
            check_auth(Some("token"), Some("ghp_x")).unwrap(),
            ("token", Some("ghp_x".to_owned()))
        );
        assert_eq!(check_auth(Some("basic"), Some("u:p")).unwrap().0, "basic");
        let code = |t: Option<&str>, s: Option<&str>| check_auth(t, s).unwrap_err().code;
        assert_eq!(code(Some("ssh"), Some("key")), "unsupported_auth_type");
        assert_eq!(code(Some("ssh"), None), "unsupported_auth_type");
        assert_eq!(code(Some("oauth"), None), "invalid_field");
        assert_eq!(code(Some("none"), Some("x")), "invalid_field");
        assert_eq!(code(Some("token"), None), "invalid_field");
        assert_eq!(code(Some("basic"), Some("nocolon")), "invalid_field");
        assert_eq!(code(Some("basic"), Some(":p")), "invalid_field");
        assert_eq!(code(Some("token"), Some("a\r\nX-Evil: 1")), "invalid_field");
        let long = "t".repeat(1025);
        assert_eq!(code(Some("token"), Some(&long)), "invalid_field");
        assert!(check_auth(Some("token"), Some(&"t".repeat(1024))).is_ok());
    }

    #[test]
    fn auth_errors_never_echo_the_secret() {
        for (t, s) in [
            ("none", "hunter2-secret"),
            ("basic", "hunter2-secret"),
            ("token", "hunter2-secret\n"),
        ] {
            let err = check_auth(Some(t), Some(s)).unwrap_err();
            assert!(!format!("{err:?}").contains("hunter2"), "{t}");
        }
        let b = body(serde_json::json!({"name": "n", "url": "u", "auth_secret": "hunter2"}));
        assert!(!format!("{b:?}").contains("hunter2"));
    }

    #[test]
    fn create_body_checks_in_order() {
        let ok = body(serde_json::json!({
            "name": " Templates ", "url": "https://github.com/Org/Repo.git"
        }))
        .check("github.com")
        .unwrap();
        assert_eq!(ok.name, "Templates");
        assert_eq!(ok.branch, "main");
        assert_eq!(ok.location.url_key, "github.com/org/repo");
        assert_eq!(ok.auth_type, "none");
        let code = |v: serde_json::Value| body(v).check("github.com").err().unwrap().code;
        assert_eq!(
            code(serde_json::json!({"name": "", "url": "http://x"})),
            "invalid_field"
        );
        assert_eq!(
            code(serde_json::json!({"name": "ok", "url": "http://github.com/o/r"})),
            "invalid_url"
        );
        assert_eq!(
            code(
                serde_json::json!({"name": "ok", "url": "https://github.com/o/r", "branch": "a..b"})
            ),
            "invalid_field"
        );
        assert_eq!(
            code(
                serde_json::json!({"name": "ok", "url": "https://github.com/o/r", "auth_type": "ssh"})
            ),
            "unsupported_auth_type"
        );
        let parse = |v: serde_json::Value| CreateRepository::parse(v).err().unwrap().code;
        assert_eq!(
            parse(serde_json::json!({"name": "n", "url": "u", "extra": 1})),
            "unknown_field"
        );
        assert_eq!(parse(serde_json::json!({"url": "u"})), "invalid_field");
        assert_eq!(parse(serde_json::json!({"name": "n"})), "invalid_field");
        assert_eq!(
            parse(serde_json::json!({"name": 1, "url": "u"})),
            "invalid_field"
        );
        assert_eq!(parse(serde_json::json!(["n"])), "invalid_field");
        let nulls =
            body(serde_json::json!({"name": "n", "url": "u", "branch": null, "auth_type": null}));
        assert_eq!((nulls.branch, nulls.auth_type), (None, None));
    }
}
