//! The org's templates and their favorites: rows, views, input and the org-scoped queries behind
//! `/api/v1/templates` and `/api/v1/preferences/favorites` (SPEC-wave2 §2.3).
//!
//! Every function takes the caller's [`Tenant`] and filters by it, so a template of another org is
//! simply not found (404). Callers who are not operators or admins ([`Viewer::sees_disabled`])
//! never see a disabled template: it is absent from their lists and answers 404.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use shared::auth::{Principal, Role, Tenant};
use shared::pagination::{asc, desc, Page, PageRequest, Paged};
use shared::store::{Database, Row, StoreError, Value as Sql};
use shared::time::Timestamp;
use shared::{ApiError, ApiResult};

use shared::manifest::{self, Manifest, ManifestError, Streaming};

/// The longest `q` search text.
pub const QUERY_MAX_CHARS: usize = 100;
/// The most `tag` filters one list takes.
pub const TAG_FILTERS_MAX: usize = 20;

/// Who is reading: the org, and whether disabled templates are visible (operators and admins).
pub struct Viewer {
    pub tenant: Tenant,
    pub sees_disabled: bool,
}

impl Viewer {
    pub fn of(principal: &Principal) -> Self {
        Self {
            tenant: principal.tenant(),
            sees_disabled: matches!(principal.role, Role::Admin | Role::Operator),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
}

/// What clients see of a template; `manifest` only in detail views.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateView {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub category: String,
    pub app_type: String,
    pub icon_url: String,
    pub base_image: String,
    pub default_resources: Resources,
    pub capabilities: Vec<String>,
    pub tags: Vec<String>,
    pub streaming: Streaming,
    pub enabled: bool,
    pub source: String,
    pub catalog_template_id: Option<String>,
    /// Whether the catalog holds a newer manifest than the installed one (catalog installs only;
    /// manual templates never have one).
    pub update_available: bool,
    pub install_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The columns [`TemplateView::from_row`] reads, for a query over `templates t`. The
/// capabilities are read from the stored manifest by SQLite (no JSON parse per row here).
const COLUMNS: &str = "t.id, t.name, t.display_name, t.description, t.category, t.app_type,
    t.icon_url, t.base_image, t.default_cpu, t.default_memory, t.streaming_protocol,
    t.streaming_port, t.streaming_path, t.tags, t.enabled, t.source, t.catalog_template_id,
    t.install_count, t.created_at, t.updated_at,
    COALESCE(json_extract(t.manifest, '$.spec.capabilities'), '[]') AS capabilities,
    EXISTS (SELECT 1 FROM catalog_templates c WHERE c.id = t.catalog_template_id
            AND c.manifest_sha256 <> t.manifest_sha256) AS update_available";

fn string_list(text: &str) -> Vec<String> {
    serde_json::from_str::<Vec<Value>>(text)
        .map(|items| {
            items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl TemplateView {
    fn from_row(row: &Row<'_>, with_manifest: bool) -> Result<Self, StoreError> {
        let manifest = if with_manifest {
            Some(serde_json::from_str(row.str("manifest")?).unwrap_or(Value::Null))
        } else {
            None
        };
        Ok(Self {
            id: row.str("id")?.to_owned(),
            name: row.str("name")?.to_owned(),
            display_name: row.str("display_name")?.to_owned(),
            description: row.str("description")?.to_owned(),
            category: row.str("category")?.to_owned(),
            app_type: row.str("app_type")?.to_owned(),
            icon_url: row.str("icon_url")?.to_owned(),
            base_image: row.str("base_image")?.to_owned(),
            default_resources: Resources {
                cpu: row.str("default_cpu")?.to_owned(),
                memory: row.str("default_memory")?.to_owned(),
            },
            capabilities: string_list(row.str("capabilities")?),
            tags: string_list(row.str("tags")?),
            streaming: Streaming {
                protocol: row.str("streaming_protocol")?.to_owned(),
                port: row.i64("streaming_port")?,
                path: row.str("streaming_path")?.to_owned(),
            },
            enabled: row.i64("enabled")? != 0,
            source: row.str("source")?.to_owned(),
            catalog_template_id: row.opt_str("catalog_template_id")?.map(str::to_owned),
            update_available: row.i64("update_available")? != 0,
            install_count: row.i64("install_count")?,
            manifest,
            created_at: Timestamp::from_ms(row.i64("created_at")?),
            updated_at: Timestamp::from_ms(row.i64("updated_at")?),
        })
    }
}

pub fn not_found() -> ApiError {
    ApiError::not_found("no such template")
}

fn name_taken() -> ApiError {
    ApiError::conflict("name_taken", "a template with this name already exists")
}

pub fn invalid(e: ManifestError) -> ApiError {
    ApiError::bad_request("invalid_field", e.0)
}

/// A template of the viewer's org by id or name (an id wins over a name); 404 for any other,
/// and for a disabled one the viewer may not see.
pub fn find(db: &Database, viewer: &Viewer, id_or_name: &str) -> ApiResult<TemplateView> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS}, t.manifest FROM templates t
              WHERE t.org_id = ? AND (t.id = ? OR t.name = ?) AND (? OR t.enabled = 1)
              ORDER BY t.id = ? DESC LIMIT 1"
        ),
        &[
            Sql::from(viewer.tenant.org_id()),
            Sql::from(id_or_name),
            Sql::from(id_or_name),
            Sql::from(viewer.sees_disabled),
            Sql::from(id_or_name),
        ],
    )?;
    let row = rows.first().ok_or_else(not_found)?;
    Ok(TemplateView::from_row(&row, true)?)
}

/// The list's filters and order (`GET /templates`).
#[derive(Debug, Default)]
pub struct ListQuery {
    pub q: Option<String>,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub app_type: Option<String>,
    pub enabled: Option<bool>,
    pub sort: Sort,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    #[default]
    Name,
    Popular,
    Newest,
}

fn bad_query(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

impl ListQuery {
    /// Reads the query string: `q` (or `search`), `category`, repeatable `tag`, `app_type`,
    /// `enabled`, `sort` (`name`, `popular`/`popularity`, `newest`/`created`). Other parameters
    /// (`limit`, `cursor`) are the page's.
    pub fn parse(raw_query: &str) -> ApiResult<Self> {
        let mut query = Self::default();
        for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
            let value = value.into_owned();
            match key.as_ref() {
                "q" | "search" => {
                    if value.chars().count() > QUERY_MAX_CHARS {
                        return Err(bad_query("q must be at most 100 characters"));
                    }
                    query.q = Some(value).filter(|v| !v.is_empty());
                }
                "category" => query.category = Some(value).filter(|v| !v.is_empty()),
                "tag" => {
                    if query.tags.len() >= TAG_FILTERS_MAX {
                        return Err(bad_query("at most 20 tag filters"));
                    }
                    if !value.is_empty() {
                        query.tags.push(value);
                    }
                }
                "app_type" => match value.as_str() {
                    "" => {}
                    "desktop" | "webapp" => query.app_type = Some(value),
                    _ => return Err(bad_query("app_type must be desktop or webapp")),
                },
                "enabled" => match value.as_str() {
                    "" => {}
                    "true" => query.enabled = Some(true),
                    "false" => query.enabled = Some(false),
                    _ => return Err(bad_query("enabled must be true or false")),
                },
                "sort" => {
                    query.sort = match value.as_str() {
                        "" | "name" => Sort::Name,
                        "popular" | "popularity" => Sort::Popular,
                        "newest" | "created" => Sort::Newest,
                        _ => return Err(bad_query("sort must be name, popular or newest")),
                    }
                }
                _ => {}
            }
        }
        Ok(query)
    }
}

/// `%` and `_` and the escape itself, escaped for `LIKE … ESCAPE '\'`.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Pages through the viewer's templates with the query's filters and order. The cursor is the
/// sort key of the last item with the id as the tiebreak.
pub fn list(
    db: &Database,
    viewer: &Viewer,
    query: &ListQuery,
    page: &PageRequest,
) -> ApiResult<Page<TemplateView>> {
    // The name sort is by `lower(display_name)`, which folds ASCII only (SQLite without ICU);
    // the cursor is built with `to_ascii_lowercase`, the same function, so pages never skip or
    // repeat an item whatever the display names hold.
    let mut q = Paged::new(format!("SELECT {COLUMNS} FROM templates t"));
    let org = q.bind(viewer.tenant.org_id());
    q.and(format!("t.org_id = {org}"));
    // Operators may filter by `enabled`; everyone else sees enabled templates only.
    let enabled = if viewer.sees_disabled {
        query.enabled
    } else if query.enabled == Some(false) {
        return page.finish(Vec::new(), |t: &TemplateView| t.id.clone());
    } else {
        Some(true)
    };
    if let Some(enabled) = enabled {
        let e = q.bind(enabled);
        q.and(format!("t.enabled = {e}"));
    }
    if let Some(text) = &query.q {
        // Case-insensitive for ASCII (SQLite's LIKE and lower() fold ASCII only).
        let p = q.bind(like_pattern(text));
        q.and(format!(
            "(lower(t.name) LIKE lower({p}) ESCAPE '\\' OR lower(t.display_name) LIKE lower({p}) ESCAPE '\\'
              OR lower(t.description) LIKE lower({p}) ESCAPE '\\' OR lower(t.tags) LIKE lower({p}) ESCAPE '\\')"
        ));
    }
    if let Some(category) = &query.category {
        let c = q.bind(category.as_str());
        q.and(format!("t.category = {c} COLLATE NOCASE"));
    }
    for tag in &query.tags {
        let t = q.bind(tag.as_str());
        q.and(format!(
            "EXISTS (SELECT 1 FROM json_each(t.tags) j WHERE lower(j.value) = lower({t}))"
        ));
    }
    if let Some(app_type) = &query.app_type {
        let a = q.bind(app_type.as_str());
        q.and(format!("t.app_type = {a}"));
    }
    let decode = |row: &Row<'_>| TemplateView::from_row(row, false);
    match query.sort {
        Sort::Name => q.fetch(
            db,
            page,
            &[asc("lower(t.display_name)"), asc("t.id")],
            decode,
            |t| (t.display_name.to_ascii_lowercase(), t.id.clone()),
        ),
        Sort::Popular => q.fetch(
            db,
            page,
            &[
                desc("t.install_count"),
                asc("lower(t.display_name)"),
                asc("t.id"),
            ],
            decode,
            |t| {
                (
                    t.install_count,
                    t.display_name.to_ascii_lowercase(),
                    t.id.clone(),
                )
            },
        ),
        Sort::Newest => q.fetch(
            db,
            page,
            &[desc("t.created_at"), desc("t.id")],
            decode,
            |t| (t.created_at.as_ms(), t.id.clone()),
        ),
    }
}

/// The body of `POST /templates`: a manifest (a JSON object or a YAML string), or the flat
/// fields a manifest is synthesized from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    pub manifest: Option<Value>,
    pub enabled: Option<bool>,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub base_image: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub app_type: Option<String>,
    pub icon_url: Option<String>,
    pub default_resources: Option<Value>,
    pub capabilities: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub ports: Option<Value>,
    pub env: Option<Value>,
}

/// The longest YAML text read for a manifest (the document itself is at most 64 KiB as JSON;
/// YAML's comments and indentation get four times that).
pub const MAX_YAML_BYTES: usize = 4 * manifest::MAX_MANIFEST_BYTES;

/// A `manifest` field: an object is the document, a string is YAML.
pub fn manifest_document(value: Value) -> ApiResult<Value> {
    match value {
        Value::String(text) if text.len() > MAX_YAML_BYTES => Err(invalid(ManifestError(
            "manifest YAML must be at most 256 KiB".into(),
        ))),
        Value::String(text) => shared::yaml::parse_one(&text)
            .map_err(|e| invalid(ManifestError(format!("manifest: {e}")))),
        doc @ Value::Object(_) => Ok(doc),
        _ => Err(invalid(ManifestError(
            "manifest must be an object or a YAML string".into(),
        ))),
    }
}

impl CreateTemplate {
    /// The validated manifest this body describes.
    pub fn into_manifest(self) -> ApiResult<Manifest> {
        let flat_given = self.name.is_some()
            || self.display_name.is_some()
            || self.base_image.is_some()
            || self.description.is_some()
            || self.category.is_some()
            || self.app_type.is_some()
            || self.icon_url.is_some()
            || self.default_resources.is_some()
            || self.capabilities.is_some()
            || self.tags.is_some()
            || self.ports.is_some()
            || self.env.is_some();
        if let Some(doc) = self.manifest {
            if flat_given {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    "give either manifest or the flat fields, not both",
                ));
            }
            return manifest::validate(manifest_document(doc)?).map_err(invalid);
        }
        let required = |v: Option<String>, field: &str| {
            v.filter(|s| !s.is_empty()).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_field",
                    format!("{field} is required (or give a manifest)"),
                )
            })
        };
        let name = required(self.name, "name")?;
        let display_name = required(self.display_name, "display_name")?;
        let base_image = required(self.base_image, "base_image")?;
        let mut spec = Map::new();
        spec.insert("displayName".into(), json!(display_name));
        spec.insert("baseImage".into(), json!(base_image));
        let optional = [
            ("description", self.description.map(Value::from)),
            ("category", self.category.map(Value::from)),
            ("appType", self.app_type.map(Value::from)),
            ("icon", self.icon_url.map(Value::from)),
            ("defaultResources", self.default_resources),
            ("capabilities", self.capabilities.map(Value::from)),
            ("tags", self.tags.map(Value::from)),
            ("ports", self.ports),
            ("env", self.env),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                spec.insert(key.into(), value);
            }
        }
        let doc = json!({
            "apiVersion": manifest::API_VERSIONS[0],
            "kind": "Template",
            "metadata": {"name": name},
            "spec": spec,
        });
        manifest::validate(doc).map_err(invalid)
    }
}

/// The `templates` columns a manifest fills, in the order of [`manifest_values`] (a manual
/// template's create and a catalog install write the same ones).
pub const MANIFEST_COLUMNS: &str = "name, display_name, description, category, app_type, icon_url,
    base_image, default_cpu, default_memory, streaming_protocol, streaming_port, streaming_path,
    manifest, manifest_sha256, tags";

/// The values of [`MANIFEST_COLUMNS`] for a validated manifest.
pub fn manifest_values(m: &Manifest) -> ApiResult<[Sql; 15]> {
    let tags = serde_json::to_string(&m.tags)
        .map_err(|e| ApiError::internal(format!("encode tags: {e}")))?;
    Ok([
        Sql::from(m.name.as_str()),
        Sql::from(m.display_name.as_str()),
        Sql::from(m.description.as_str()),
        Sql::from(m.category.as_str()),
        Sql::from(m.app_type),
        Sql::from(m.icon_url.as_str()),
        Sql::from(m.base_image.as_str()),
        Sql::from(m.default_cpu.as_str()),
        Sql::from(m.default_memory.as_str()),
        Sql::from(m.streaming.protocol.as_str()),
        Sql::from(m.streaming.port),
        Sql::from(m.streaming.path.as_str()),
        Sql::from(m.canonical.as_str()),
        Sql::from(m.sha256.as_str()),
        Sql::from(tags),
    ])
}

/// Inserts a manual template; 409 `name_taken` when the org has one of that name. The name
/// check and the write are one statement.
pub fn create(
    db: &Database,
    viewer: &Viewer,
    id: &str,
    m: &Manifest,
    enabled: bool,
    created_by: &str,
    now_ms: i64,
) -> ApiResult<TemplateView> {
    let mut params = vec![Sql::from(id), Sql::from(viewer.tenant.org_id())];
    params.extend(manifest_values(m)?);
    params.extend([
        Sql::from(enabled),
        Sql::from(created_by),
        Sql::from(now_ms),
        Sql::from(now_ms),
    ]);
    let rows = db
        .execute(
            &format!(
            "INSERT INTO templates (id, org_id, {MANIFEST_COLUMNS}, enabled, source, created_by,
                 created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'manual', ?, ?, ?)
             ON CONFLICT (org_id, name) DO NOTHING
             RETURNING id"
        ),
            &params,
        )
        .map_err(|e| {
            ApiError::from(e)
                .conflict_on_unique("name_taken", "a template with this name already exists")
        })?;
    if rows.is_empty() {
        return Err(name_taken());
    }
    find(db, viewer, id)
}

/// The body of `PATCH /templates/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatePatch {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub app_type: Option<String>,
    pub icon_url: Option<String>,
    pub tags: Option<Vec<String>>,
    pub default_resources: Option<Value>,
    pub enabled: Option<bool>,
    pub manifest: Option<Value>,
}

impl TemplatePatch {
    /// The manifest after the patch (the new `manifest` if given, else the stored one, with the
    /// fields applied to its `spec`), validated; `None` when only `enabled` changes. The name
    /// is immutable: a manifest naming another is refused.
    pub fn apply(self, current: &TemplateView) -> ApiResult<Option<Manifest>> {
        let fields: [(&str, Option<Value>); 7] = [
            ("displayName", self.display_name.map(Value::from)),
            ("description", self.description.map(Value::from)),
            ("category", self.category.map(Value::from)),
            ("appType", self.app_type.map(Value::from)),
            ("icon", self.icon_url.map(Value::from)),
            ("tags", self.tags.map(Value::from)),
            ("defaultResources", self.default_resources),
        ];
        if self.manifest.is_none() && fields.iter().all(|(_, v)| v.is_none()) {
            return Ok(None);
        }
        let mut doc = match self.manifest {
            Some(doc) => manifest_document(doc)?,
            None => current.manifest.clone().unwrap_or(Value::Null),
        };
        let doc_name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if doc_name != current.name {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!(
                    "metadata.name must stay `{}` (a template's name cannot change)",
                    current.name
                ),
            ));
        }
        if let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) {
            for (key, value) in fields {
                if let Some(value) = value {
                    spec.insert(key.into(), value);
                }
            }
        }
        manifest::validate(doc).map(Some).map_err(invalid)
    }
}

/// Writes a patched template (`None` keeps the manifest); 404 when it is gone.
pub fn update(
    db: &Database,
    viewer: &Viewer,
    id: &str,
    m: Option<&Manifest>,
    enabled: Option<bool>,
    now_ms: i64,
) -> ApiResult<TemplateView> {
    let tags = m
        .map(|m| serde_json::to_string(&m.tags))
        .transpose()
        .map_err(|e| ApiError::internal(format!("encode tags: {e}")))?;
    db.execute(
        "UPDATE templates SET
             display_name = COALESCE(?, display_name), description = COALESCE(?, description),
             category = COALESCE(?, category), app_type = COALESCE(?, app_type),
             icon_url = COALESCE(?, icon_url), base_image = COALESCE(?, base_image),
             default_cpu = COALESCE(?, default_cpu), default_memory = COALESCE(?, default_memory),
             streaming_protocol = COALESCE(?, streaming_protocol),
             streaming_port = COALESCE(?, streaming_port),
             streaming_path = COALESCE(?, streaming_path), manifest = COALESCE(?, manifest),
             manifest_sha256 = COALESCE(?, manifest_sha256), tags = COALESCE(?, tags),
             enabled = COALESCE(?, enabled), updated_at = ?
          WHERE id = ? AND org_id = ?",
        &[
            Sql::from(m.map(|m| m.display_name.as_str())),
            Sql::from(m.map(|m| m.description.as_str())),
            Sql::from(m.map(|m| m.category.as_str())),
            Sql::from(m.map(|m| m.app_type)),
            Sql::from(m.map(|m| m.icon_url.as_str())),
            Sql::from(m.map(|m| m.base_image.as_str())),
            Sql::from(m.map(|m| m.default_cpu.as_str())),
            Sql::from(m.map(|m| m.default_memory.as_str())),
            Sql::from(m.map(|m| m.streaming.protocol.as_str())),
            Sql::from(m.map(|m| m.streaming.port)),
            Sql::from(m.map(|m| m.streaming.path.as_str())),
            Sql::from(m.map(|m| m.canonical.as_str())),
            Sql::from(m.map(|m| m.sha256.as_str())),
            Sql::from(tags),
            Sql::from(enabled),
            Sql::from(now_ms),
            Sql::from(id),
            Sql::from(viewer.tenant.org_id()),
        ],
    )?;
    if db.changes()? == 0 {
        return Err(not_found());
    }
    find(db, viewer, id)
}

/// Deletes a template and its favorites in one transaction; 404 when it is not in the org.
pub fn delete(db: &Database, viewer: &Viewer, id: &str) -> ApiResult<()> {
    db.transaction(|db| {
        db.execute(
            "DELETE FROM templates WHERE id = ? AND org_id = ?",
            &[Sql::from(id), Sql::from(viewer.tenant.org_id())],
        )?;
        if db.changes()? == 0 {
            return Err(not_found());
        }
        db.execute(
            "DELETE FROM template_favorites WHERE template_id = ? AND org_id = ?",
            &[Sql::from(id), Sql::from(viewer.tenant.org_id())],
        )?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Favorites
// ---------------------------------------------------------------------------------------------

/// A favorite in `GET /preferences/favorites`: the template summary plus when it was favorited.
#[derive(Debug, Clone, Serialize)]
pub struct FavoriteView {
    #[serde(flatten)]
    pub template: TemplateView,
    pub favorited: bool,
    pub favorited_at: Timestamp,
}

/// `{"template_id","favorited","favorited_at"}`.
#[derive(Debug, Clone, Serialize)]
pub struct FavoriteState {
    pub template_id: String,
    pub favorited: bool,
    pub favorited_at: Option<Timestamp>,
}

/// The caller's favorites, newest first. Each row carries its own template (one join), so a
/// timestamp can never attach to another template; favorites of templates the caller cannot
/// see (disabled, for a non-operator) are left out.
pub fn favorites(
    db: &Database,
    viewer: &Viewer,
    user_id: &str,
    page: &PageRequest,
) -> ApiResult<Page<FavoriteView>> {
    let mut q = Paged::new(format!(
        "SELECT {COLUMNS}, f.favorited_at
           FROM template_favorites f
           JOIN templates t ON t.id = f.template_id AND t.org_id = f.org_id"
    ));
    let (user, org, all) = (
        q.bind(user_id),
        q.bind(viewer.tenant.org_id()),
        q.bind(viewer.sees_disabled),
    );
    q.and(format!(
        "f.user_id = {user} AND f.org_id = {org} AND ({all} OR t.enabled = 1)"
    ));
    q.fetch(
        db,
        page,
        &[desc("f.favorited_at"), desc("f.template_id")],
        |row| {
            Ok::<_, StoreError>(FavoriteView {
                template: TemplateView::from_row(row, false)?,
                favorited: true,
                favorited_at: Timestamp::from_ms(row.i64("favorited_at")?),
            })
        },
        |f| (f.favorited_at.as_ms(), f.template.id.clone()),
    )
}

/// Whether the caller favorited a template (found by the caller already).
pub fn favorite_state(db: &Database, user_id: &str, template_id: &str) -> ApiResult<FavoriteState> {
    let rows = db.execute(
        "SELECT favorited_at FROM template_favorites WHERE user_id = ? AND template_id = ?",
        &[Sql::from(user_id), Sql::from(template_id)],
    )?;
    let at = rows.first().map(|r| r.i64("favorited_at")).transpose()?;
    Ok(FavoriteState {
        template_id: template_id.to_owned(),
        favorited: at.is_some(),
        favorited_at: at.map(Timestamp::from_ms),
    })
}

/// Favorites a template of the org (idempotent: a second call keeps the first time). The insert
/// re-checks the template is still in the org, so a concurrent delete leaves nothing behind.
pub fn add_favorite(
    db: &Database,
    viewer: &Viewer,
    user_id: &str,
    template_id: &str,
    now_ms: i64,
) -> ApiResult<FavoriteState> {
    db.execute(
        "INSERT INTO template_favorites (user_id, template_id, org_id, favorited_at)
         SELECT ?, t.id, t.org_id, ? FROM templates t WHERE t.id = ? AND t.org_id = ?
         ON CONFLICT (user_id, template_id) DO NOTHING",
        &[
            Sql::from(user_id),
            Sql::from(now_ms),
            Sql::from(template_id),
            Sql::from(viewer.tenant.org_id()),
        ],
    )?;
    let state = favorite_state(db, user_id, template_id)?;
    if !state.favorited {
        return Err(not_found());
    }
    Ok(state)
}

/// Removes a favorite of the caller's (idempotent).
pub fn remove_favorite(
    db: &Database,
    viewer: &Viewer,
    user_id: &str,
    template_id: &str,
) -> ApiResult<()> {
    db.execute(
        "DELETE FROM template_favorites WHERE user_id = ? AND template_id = ? AND org_id = ?",
        &[
            Sql::from(user_id),
            Sql::from(template_id),
            Sql::from(viewer.tenant.org_id()),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_reads_filters_aliases_and_repeated_tags() {
        let q = ListQuery::parse(
            "search=fire%25fox&category=Web+Browsers&tag=a&tag=B&tag=&app_type=desktop&enabled=false&sort=popularity&limit=5&cursor=x",
        )
        .unwrap();
        assert_eq!(q.q.as_deref(), Some("fire%fox"));
        assert_eq!(q.category.as_deref(), Some("Web Browsers"));
        assert_eq!(q.tags, vec!["a", "B"]);
        assert_eq!(q.app_type.as_deref(), Some("desktop"));
        assert_eq!(q.enabled, Some(false));
        assert_eq!(q.sort, Sort::Popular);
        assert_eq!(ListQuery::parse("sort=created").unwrap().sort, Sort::Newest);
        assert_eq!(ListQuery::parse("").unwrap().sort, Sort::Name);
    }

    #[test]
    fn list_query_refuses_bad_values() {
        for bad in [
            "sort=random",
            "app_type=mobile",
            "enabled=yes",
            &format!("q={}", "x".repeat(101)),
            &"tag=t&".repeat(21),
        ] {
            assert_eq!(
                ListQuery::parse(bad).unwrap_err().code,
                "invalid_query",
                "{bad}"
            );
        }
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(like_pattern(""), "%%");
    }
}
