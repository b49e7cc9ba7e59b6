//! The catalog (SPEC-wave2 §2.3): templates that repository syncs found, browseable by the org's
//! users, installed into the org's templates by operators. Every query is scoped to the caller's
//! org (another org's catalog template is simply not found).
//!
//! A catalog template is listed once its repository has synced successfully at least once, even
//! when a later sync failed (**FIX**: StreamSpace hides the whole repository on one failed
//! re-sync). Installing re-validates the stored manifest and copies it into `templates`
//! (`source = 'catalog'`); an installed template shows `update_available` when the catalog's
//! manifest has changed since.

use serde::Serialize;
use serde_json::Value;
use shared::auth::Tenant;
use shared::pagination::{asc, Key, Page, PageRequest, Paged};
use shared::store::{Database, Row, StoreError, Value as Sql};
use shared::time::Timestamp;
use shared::{ApiError, ApiResult};

use crate::templates::{self, Viewer};
use shared::manifest::{self, Manifest};

/// The repository a catalog template comes from.
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryRef {
    pub id: String,
    pub name: String,
    pub url: String,
}

/// What clients see of a catalog template; `manifest` only in the detail view.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogTemplateView {
    pub id: String,
    pub repository: RepositoryRef,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub category: String,
    pub app_type: String,
    pub icon_url: String,
    pub tags: Vec<String>,
    pub version: String,
    pub install_count: i64,
    pub view_count: i64,
    pub avg_rating: f64,
    pub rating_count: i64,
    pub is_featured: bool,
    /// Whether the org has installed it.
    pub installed: bool,
    pub source_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const COLUMNS: &str = "c.id, c.repository_id, r.name AS repository_name, r.url AS repository_url,
    c.name, c.display_name, c.description, c.category, c.app_type, c.icon_url, c.tags, c.version,
    c.install_count, c.view_count, c.avg_rating, c.rating_count, c.is_featured, c.source_path,
    c.manifest, c.created_at, c.updated_at,
    EXISTS (SELECT 1 FROM templates t WHERE t.org_id = c.org_id
            AND t.catalog_template_id = c.id) AS installed";

/// Catalog templates of the org whose repository synced at least once.
const FROM: &str = "FROM catalog_templates c JOIN repositories r ON r.id = c.repository_id";
/// The org's catalog (`?1`): templates of repositories that synced at least once.
const VISIBLE: &str = "c.org_id = ?1 AND r.last_sync_commit IS NOT NULL";

fn real(row: &Row<'_>, column: &str) -> Result<f64, StoreError> {
    match row.value(column)? {
        Sql::Real(v) => Ok(*v),
        #[allow(clippy::cast_precision_loss)]
        Sql::Integer(v) => Ok(*v as f64),
        _ => Err(StoreError::sqlite(format!("{column} is not a number"))),
    }
}

impl CatalogTemplateView {
    fn from_row(row: &Row<'_>, with_manifest: bool) -> Result<Self, StoreError> {
        let text = |c: &str| row.str(c).map(str::to_owned);
        Ok(Self {
            id: text("id")?,
            repository: RepositoryRef {
                id: text("repository_id")?,
                name: text("repository_name")?,
                url: text("repository_url")?,
            },
            name: text("name")?,
            display_name: text("display_name")?,
            description: text("description")?,
            category: text("category")?,
            app_type: text("app_type")?,
            icon_url: text("icon_url")?,
            tags: serde_json::from_str(row.str("tags")?).unwrap_or_default(),
            version: text("version")?,
            install_count: row.i64("install_count")?,
            view_count: row.i64("view_count")?,
            avg_rating: real(row, "avg_rating")?,
            rating_count: row.i64("rating_count")?,
            is_featured: row.i64("is_featured")? != 0,
            installed: row.i64("installed")? != 0,
            source_path: text("source_path")?,
            manifest: if with_manifest {
                Some(serde_json::from_str(row.str("manifest")?).unwrap_or(Value::Null))
            } else {
                None
            },
            created_at: Timestamp::from_ms(row.i64("created_at")?),
            updated_at: Timestamp::from_ms(row.i64("updated_at")?),
        })
    }
}

pub fn not_found() -> ApiError {
    ApiError::not_found("no such catalog template")
}

/// The catalog's orders (`sort=`), each with the id as the tiebreak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// StreamSpace's default: `install_count*3 + view_count + rating_count*10`, highest first.
    #[default]
    Popular,
    /// `avg_rating`, then `rating_count`, highest first.
    Rating,
    /// Newest first.
    Recent,
    Installs,
    Views,
    /// By name (the manifest's `metadata.name`, lowercase ASCII).
    Name,
}

impl Sort {
    pub fn parse(value: &str) -> ApiResult<Self> {
        Ok(match value {
            "" | "popular" => Sort::Popular,
            "rating" => Sort::Rating,
            "recent" => Sort::Recent,
            "installs" => Sort::Installs,
            "views" => Sort::Views,
            "name" => Sort::Name,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "sort must be popular, rating, recent, installs, views or name",
                ))
            }
        })
    }

    /// The key expression and whether it ascends.
    fn key(self) -> (&'static str, bool) {
        match self {
            Sort::Popular => (
                "(c.install_count * 3 + c.view_count + c.rating_count * 10)",
                false,
            ),
            Sort::Rating => ("(c.avg_rating * 1000000.0 + c.rating_count)", false),
            Sort::Recent => ("c.created_at", false),
            Sort::Installs => ("c.install_count", false),
            Sort::Views => ("c.view_count", false),
            Sort::Name => ("c.name", true),
        }
    }
}

/// The list's filters (`GET /catalog/templates`).
#[derive(Debug, Default)]
pub struct CatalogQuery {
    pub q: Option<String>,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub app_type: Option<String>,
    pub featured: bool,
    pub repository_id: Option<String>,
    pub sort: Sort,
}

fn bad_query(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

impl CatalogQuery {
    /// `q`/`search`, `category`, repeatable `tag` (all must match), `app_type`,
    /// `featured=true`, `repository_id`, `sort`.
    pub fn parse(raw_query: &str) -> ApiResult<Self> {
        let mut query = Self::default();
        for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
            let value = value.into_owned();
            match key.as_ref() {
                "q" | "search" => {
                    if value.chars().count() > templates::QUERY_MAX_CHARS {
                        return Err(bad_query("q must be at most 100 characters"));
                    }
                    query.q = Some(value).filter(|v| !v.is_empty());
                }
                "category" => query.category = Some(value).filter(|v| !v.is_empty()),
                "tag" if !value.is_empty() => {
                    if query.tags.len() >= templates::TAG_FILTERS_MAX {
                        return Err(bad_query("at most 20 tag filters"));
                    }
                    query.tags.push(value.to_lowercase());
                }
                "app_type" => match value.as_str() {
                    "" => {}
                    "desktop" | "webapp" => query.app_type = Some(value),
                    _ => return Err(bad_query("app_type must be desktop or webapp")),
                },
                "featured" => {
                    query.featured = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad_query("featured must be true or false")),
                    }
                }
                "repository_id" => query.repository_id = Some(value).filter(|v| !v.is_empty()),
                "sort" => query.sort = Sort::parse(&value)?,
                _ => {}
            }
        }
        Ok(query)
    }
}

/// Pages through the org's catalog. The cursor is `(sort key, id)`.
pub fn list(
    db: &Database,
    tenant: &Tenant,
    query: &CatalogQuery,
    page: &PageRequest,
) -> ApiResult<Page<CatalogTemplateView>> {
    let mut q = Paged::new(format!("SELECT {COLUMNS} {FROM}"));
    q.bind(tenant.org_id());
    q.and(VISIBLE);
    if let Some(text) = &query.q {
        let pattern = q.bind(templates::like_pattern(&text.to_lowercase()));
        q.and(format!(
            "(lower(c.name) LIKE {pattern} ESCAPE '\\' OR lower(c.display_name) LIKE {pattern} ESCAPE '\\'
                   OR lower(c.description) LIKE {pattern} ESCAPE '\\' OR lower(c.tags) LIKE {pattern} ESCAPE '\\')"
        ));
    }
    if let Some(category) = &query.category {
        let c = q.bind(category.as_str());
        q.and(format!("lower(c.category) = lower({c})"));
    }
    for tag in &query.tags {
        let t = q.bind(tag.as_str());
        q.and(format!(
            "EXISTS (SELECT 1 FROM json_each(c.tags) j WHERE lower(j.value) = {t})"
        ));
    }
    if let Some(app_type) = &query.app_type {
        let a = q.bind(app_type.as_str());
        q.and(format!("c.app_type = {a}"));
    }
    if query.featured {
        q.and("c.is_featured = 1");
    }
    if let Some(repository) = &query.repository_id {
        let r = q.bind(repository.as_str());
        q.and(format!("c.repository_id = {r}"));
    }
    let (key, ascending) = query.sort.key();
    let order = [
        Key {
            expr: key,
            desc: !ascending,
        },
        asc("c.id"),
    ];
    let sort = query.sort;
    q.fetch(
        db,
        page,
        &order,
        |row| CatalogTemplateView::from_row(row, false),
        |t| -> (Value, String) {
            let key = match sort {
                Sort::Popular => {
                    Value::from(t.install_count * 3 + t.view_count + t.rating_count * 10)
                }
                #[allow(clippy::cast_precision_loss)]
                Sort::Rating => Value::from(t.avg_rating * 1_000_000.0 + t.rating_count as f64),
                Sort::Recent => Value::from(t.created_at.as_ms()),
                Sort::Installs => Value::from(t.install_count),
                Sort::Views => Value::from(t.view_count),
                Sort::Name => Value::from(t.name.clone()),
            };
            (key, t.id.clone())
        },
    )
}

/// A catalog template of the org with its manifest; 404 otherwise.
pub fn find(db: &Database, tenant: &Tenant, id: &str) -> ApiResult<CatalogTemplateView> {
    let rows = db.execute(
        &format!("SELECT {COLUMNS} {FROM} WHERE {VISIBLE} AND c.id = ?2"),
        &[Sql::from(tenant.org_id()), Sql::from(id)],
    )?;
    let row = rows.first().ok_or_else(not_found)?;
    Ok(CatalogTemplateView::from_row(&row, true)?)
}

/// Counts a view (`POST /catalog/templates/{id}/view`): one guarded statement.
pub fn record_view(db: &Database, tenant: &Tenant, id: &str) -> ApiResult<()> {
    let rows = db.execute(
        "UPDATE catalog_templates SET view_count = view_count + 1
          WHERE id = ?1 AND org_id = ?2 RETURNING id",
        &[Sql::from(id), Sql::from(tenant.org_id())],
    )?;
    if rows.is_empty() {
        return Err(not_found());
    }
    Ok(())
}

/// 422 `invalid_manifest`: the stored manifest no longer passes validation.
fn invalid_manifest(e: &manifest::ManifestError) -> ApiError {
    ApiError::registered(
        "invalid_manifest",
        format!("the catalog template's manifest is invalid: {e}"),
    )
}

/// What to install, and as what.
#[derive(Debug, Clone, Copy)]
pub struct Install<'a> {
    /// The catalog template.
    pub id: &'a str,
    /// Installs it under another name (`metadata.name` of the copy).
    pub name_override: Option<&'a str>,
    pub enabled: bool,
    /// The id the template gets if it is new.
    pub new_template_id: &'a str,
    pub user_id: &'a str,
    pub now_ms: i64,
}

/// The outcome of an install.
pub struct Installed {
    pub template: templates::TemplateView,
    /// A new template (201) rather than an update of an installed one (200).
    pub created: bool,
}

/// Installs a catalog template into the org's templates (`source = 'catalog'`) under its name or
/// `name_override`: re-validates the manifest, upserts the template (409 `name_taken` when a
/// manual template holds the name) and counts the install on the catalog row.
pub fn install(db: &Database, viewer: &Viewer, request: &Install<'_>) -> ApiResult<Installed> {
    let Install {
        id,
        name_override,
        enabled,
        new_template_id,
        user_id,
        now_ms,
    } = *request;
    let item = find(db, &viewer.tenant, id)?;
    let mut document = item.manifest.clone().unwrap_or(Value::Null);
    if let Some(name) = name_override {
        match document.pointer_mut("/metadata") {
            Some(Value::Object(metadata)) => {
                metadata.insert("name".to_owned(), Value::from(name));
            }
            _ => {
                return Err(invalid_manifest(&manifest::ManifestError(
                    "metadata is missing".into(),
                )))
            }
        }
    }
    let m: Manifest = manifest::validate(document).map_err(|e| {
        if name_override.is_some() && e.0.starts_with("metadata.name") {
            ApiError::bad_request("invalid_field", format!("name: {e}"))
        } else {
            invalid_manifest(&e)
        }
    })?;
    let existing = db.execute(
        "SELECT id, source FROM templates WHERE org_id = ?1 AND name = ?2",
        &[
            Sql::from(viewer.tenant.org_id()),
            Sql::from(m.name.as_str()),
        ],
    )?;
    if let Some(row) = existing.first() {
        if row.str("source")? != "catalog" {
            return Err(ApiError::conflict(
                "name_taken",
                format!("a manual template named `{}` exists", m.name),
            ));
        }
    }
    let created = existing.is_empty();
    let mut params = vec![
        Sql::from(new_template_id),
        Sql::from(viewer.tenant.org_id()),
    ];
    params.extend(templates::manifest_values(&m)?);
    params.extend([
        Sql::from(enabled),
        Sql::from(item.id.as_str()),
        Sql::from(user_id),
        Sql::from(now_ms),
    ]);
    // ?1 id, ?2 org, ?3–?17 the manifest's columns, ?18 enabled, ?19 the catalog template,
    // ?20 who, ?21 when.
    let rows = db.execute(
        &format!(
            "INSERT INTO templates (id, org_id, {columns}, enabled, source, catalog_template_id,
                 created_by, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18, 'catalog', ?19, ?20, ?21, ?21)
             ON CONFLICT (org_id, name) DO UPDATE SET
                 display_name = excluded.display_name, description = excluded.description,
                 category = excluded.category, app_type = excluded.app_type,
                 icon_url = excluded.icon_url, base_image = excluded.base_image,
                 default_cpu = excluded.default_cpu, default_memory = excluded.default_memory,
                 streaming_protocol = excluded.streaming_protocol,
                 streaming_port = excluded.streaming_port, streaming_path = excluded.streaming_path,
                 manifest = excluded.manifest, manifest_sha256 = excluded.manifest_sha256,
                 tags = excluded.tags, catalog_template_id = excluded.catalog_template_id,
                 updated_at = excluded.updated_at
               WHERE templates.source = 'catalog'
             RETURNING id",
            columns = templates::MANIFEST_COLUMNS
        ),
        &params,
    )?;
    let template_id = rows
        .first()
        .map(|r| r.str("id").map(str::to_owned))
        .transpose()?
        .ok_or_else(|| {
            ApiError::conflict(
                "name_taken",
                format!("a manual template named `{}` exists", m.name),
            )
        })?;
    db.execute(
        "UPDATE catalog_templates SET install_count = install_count + 1 WHERE id = ?1",
        &[Sql::from(item.id.as_str())],
    )?;
    Ok(Installed {
        template: templates::find(db, viewer, &template_id)?,
        created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::auth::Role;
    use shared::testing::{principal, TestStores};

    const ORG: &str = "org-a";

    fn manifest(name: &str) -> (String, String) {
        let doc = serde_json::json!({
            "apiVersion": "stream.space/v1alpha1",
            "kind": "Template",
            "metadata": {"name": name},
            "spec": {"displayName": name.to_uppercase(), "baseImage": "lscr.io/linuxserver/firefox:latest",
                     "tags": ["web", name], "kasmvnc": {"enabled": true, "port": 3000}}
        });
        let m = shared::manifest::validate(doc).unwrap();
        (m.canonical, m.sha256)
    }

    /// A repository (synced when `synced`) with catalog templates `(name, installs, views)`.
    fn repository(db: &Database, id: &str, org: &str, synced: bool, items: &[(&str, i64, i64)]) {
        db.execute(
            "INSERT INTO repositories (id, org_id, name, url, url_key, last_sync_commit,
                    created_by, created_at, updated_at)
             VALUES (?1, ?2, ?1, 'https://github.com/o/r', ?1, ?3, 'u', 0, 0)",
            &[
                Sql::from(id),
                Sql::from(org),
                Sql::from(synced.then_some("abc")),
            ],
        )
        .unwrap();
        for (i, (name, installs, views)) in items.iter().enumerate() {
            db.execute(
                "INSERT INTO catalog_templates (id, org_id, repository_id, name, display_name,
                        description, category, app_type, icon_url, base_image, tags, manifest,
                        manifest_sha256, source_path, install_count, view_count, created_at,
                        updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4, '', 'Web', 'desktop', '', 'img', '[\"web\"]', ?5,
                        ?10, ?6, ?7, ?8, ?9, ?9)",
                &[
                    Sql::from(format!("{id}-{name}")),
                    Sql::from(org),
                    Sql::from(id),
                    Sql::from(*name),
                    Sql::from(manifest(name).0),
                    Sql::from(format!("{name}.yaml")),
                    Sql::from(*installs),
                    Sql::from(*views),
                    Sql::from(i64::try_from(i).unwrap()),
                    Sql::from(manifest(name).1),
                ],
            )
            .unwrap();
        }
    }

    fn names(page: &Page<CatalogTemplateView>) -> Vec<String> {
        page.items.iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn a_featured_value_other_than_true_or_false_is_refused_not_ignored() {
        for raw in ["featured=1", "featured=yes", "featured=TRUE", "featured="] {
            let err = CatalogQuery::parse(raw).err().map(|e| e.code);
            assert_eq!(err, Some("invalid_query"), "{raw}");
        }
        for raw in ["featured=true", "featured=false"] {
            assert!(CatalogQuery::parse(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn the_catalog_lists_synced_repositories_of_the_org_only_and_pages_every_sort() {
        let s = TestStores::new();
        let services = s.services();
        let db = services.db().unwrap();
        repository(
            db,
            "r1",
            ORG,
            true,
            &[
                ("gimp", 5, 0),
                ("firefox", 9, 3),
                ("vlc", 1, 40),
                ("zed", 5, 0),
            ],
        );
        repository(db, "r2", ORG, false, &[("never-synced", 100, 100)]);
        repository(db, "r3", "org-b", true, &[("foreign", 100, 100)]);
        let tenant = Tenant::of_org(ORG);
        let all = |sort: Sort| -> Vec<String> {
            let mut out = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let raw = match &cursor {
                    Some(c) => format!("limit=1&cursor={c}"),
                    None => "limit=1".to_owned(),
                };
                let page = list(
                    db,
                    &tenant,
                    &CatalogQuery {
                        sort,
                        ..CatalogQuery::default()
                    },
                    &PageRequest::from_query(&raw).unwrap(),
                )
                .unwrap();
                out.extend(names(&page));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => return out,
                }
            }
        };
        // popular = installs*3 + views + ratings*10: firefox 30, vlc 43, gimp 15, zed 15.
        assert_eq!(all(Sort::Popular), ["vlc", "firefox", "gimp", "zed"]);
        assert_eq!(all(Sort::Installs), ["firefox", "gimp", "zed", "vlc"]);
        assert_eq!(all(Sort::Views), ["vlc", "firefox", "gimp", "zed"]);
        assert_eq!(all(Sort::Name), ["firefox", "gimp", "vlc", "zed"]);
        assert_eq!(all(Sort::Recent), ["zed", "vlc", "firefox", "gimp"]);
        // Filters.
        let q = |raw: &str| {
            names(
                &list(
                    db,
                    &tenant,
                    &CatalogQuery::parse(raw).unwrap(),
                    &PageRequest::from_query("").unwrap(),
                )
                .unwrap(),
            )
        };
        assert_eq!(q("q=GIM"), ["gimp"]);
        assert_eq!(q("q=%25"), Vec::<String>::new(), "% is literal");
        assert_eq!(q("tag=WEB&sort=name").len(), 4);
        assert_eq!(q("featured=true"), Vec::<String>::new());
        assert_eq!(q("featured=false").len(), 4);
        assert!(
            find(db, &tenant, "r3-foreign").is_err(),
            "another org's is not found"
        );
        assert!(find(db, &tenant, "r2-never-synced").is_err());
    }

    #[test]
    fn install_copies_the_manifest_counts_once_and_refuses_a_manual_name() {
        let s = TestStores::new();
        let services = s.services();
        let db = services.db().unwrap();
        repository(db, "r1", ORG, true, &[("firefox", 0, 0), ("gimp", 0, 0)]);
        let viewer = Viewer::of(&principal("u1", ORG, Role::Operator));
        let request =
            |id: &'static str, name: Option<&'static str>, new_id: &'static str| Install {
                id,
                name_override: name,
                enabled: true,
                new_template_id: new_id,
                user_id: "u1",
                now_ms: 1,
            };
        let first = install(db, &viewer, &request("r1-firefox", None, "t1")).unwrap();
        assert!(first.created);
        assert_eq!(first.template.source, "catalog");
        assert_eq!(
            first.template.catalog_template_id.as_deref(),
            Some("r1-firefox")
        );
        assert!(!first.template.update_available);
        assert_eq!(first.template.streaming.protocol, "selkies");
        // Again: an update of the same template, not a new one.
        let again = install(db, &viewer, &request("r1-firefox", None, "t2")).unwrap();
        assert!(!again.created);
        assert_eq!(again.template.id, "t1");
        let count = db
            .execute(
                "SELECT install_count FROM catalog_templates WHERE id = 'r1-firefox'",
                &[],
            )
            .unwrap();
        assert_eq!(count.first().unwrap().i64("install_count").unwrap(), 2);
        // The catalog's manifest changes: the installed template shows an update.
        db.execute(
            "UPDATE catalog_templates SET manifest_sha256 = 'new' WHERE id = 'r1-firefox'",
            &[],
        )
        .unwrap();
        assert!(templates::find(db, &viewer, "t1").unwrap().update_available);
        // A manual template holds the name: 409, nothing changes.
        db.execute(
            "INSERT INTO templates (id, org_id, name, display_name, app_type, base_image, default_cpu,
                    default_memory, manifest, manifest_sha256, source, created_by, created_at, updated_at)
             VALUES ('m1', ?1, 'gimp', 'GIMP', 'desktop', 'img', '1000m', '2Gi', '{}', 'x', 'manual', 'u', 0, 0)",
            &[Sql::from(ORG)],
        )
        .unwrap();
        let err = install(db, &viewer, &request("r1-gimp", None, "t3"))
            .err()
            .unwrap();
        assert_eq!((err.status.as_u16(), err.code), (409, "name_taken"));
        // Under another name it installs.
        let renamed = install(db, &viewer, &request("r1-gimp", Some("gimp-2"), "t4")).unwrap();
        assert_eq!(renamed.template.name, "gimp-2");
        // A bad override name is the caller's error.
        let err = install(db, &viewer, &request("r1-gimp", Some("Not A Name"), "t5"))
            .err()
            .unwrap();
        assert_eq!(err.status.as_u16(), 400);
        // A stored manifest that no longer validates: 422.
        db.execute("UPDATE catalog_templates SET manifest = '{\"kind\":\"Template\"}' WHERE id = 'r1-gimp'", &[])
            .unwrap();
        let err = install(db, &viewer, &request("r1-gimp", Some("gimp-3"), "t6"))
            .err()
            .unwrap();
        assert_eq!((err.status.as_u16(), err.code), (422, "invalid_manifest"));
    }
}
