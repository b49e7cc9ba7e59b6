//! The org's templates as sessions read them (the catalog component owns their life cycle):
//! a session starts from an enabled template of its org, found by id or by name.

use crate::store::{Database, Row, StoreError, Value};

/// What starting a session needs of a template.
#[derive(Debug, Clone)]
pub struct TemplateRef {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub app_type: String,
    pub default_cpu: String,
    pub default_memory: String,
    pub streaming_protocol: String,
    pub streaming_port: i64,
    pub streaming_path: String,
    /// The whole manifest as stored (canonical JSON), sent to the agent in `start_session`.
    pub manifest: String,
}

impl TemplateRef {
    const COLUMNS: &'static str = "id, name, enabled, app_type, default_cpu, default_memory,
        streaming_protocol, streaming_port, streaming_path, manifest";

    fn from_row(row: &Row<'_>) -> Result<Self, StoreError> {
        let text = |c: &str| row.str(c).map(str::to_owned);
        Ok(Self {
            id: text("id")?,
            name: text("name")?,
            enabled: row.i64("enabled")? != 0,
            app_type: text("app_type")?,
            default_cpu: text("default_cpu")?,
            default_memory: text("default_memory")?,
            streaming_protocol: text("streaming_protocol")?,
            streaming_port: row.i64("streaming_port")?,
            streaming_path: text("streaming_path")?,
            manifest: text("manifest")?,
        })
    }
}

/// A template of `org_id` by id or by name; `None` when the org has none such (another org's
/// template is never found).
pub fn find(
    db: &Database,
    org_id: &str,
    id_or_name: &str,
) -> Result<Option<TemplateRef>, StoreError> {
    let rows = db.execute(
        &format!(
            "SELECT {} FROM templates WHERE org_id = ?1 AND (id = ?2 OR name = ?2)
              ORDER BY id = ?2 DESC LIMIT 1",
            TemplateRef::COLUMNS
        ),
        &[Value::from(org_id), Value::from(id_or_name)],
    )?;
    rows.first().map(|r| TemplateRef::from_row(&r)).transpose()
}
