//! The list contract of the API: `?limit=` (default 50, clamped to 1..=200) and `?cursor=`
//! (opaque); answers are `{"items": [...], "next_cursor": "..."|null}` plus `total` where cheap.
//!
//! A cursor is the sort key of the last item, base64url-encoded JSON. It is opaque to clients (its
//! form may change); a tampered cursor can only move within what the query's own filters — the
//! caller's org included — already allow, and a malformed one is a 400.

use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::query_value;
use crate::store::{Database, Row, Rows, Value};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// The page a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    cursor: Option<String>,
}

impl PageRequest {
    pub fn from_query(raw_query: &str) -> ApiResult<Self> {
        let limit = match query_value(raw_query, "limit") {
            None => DEFAULT_LIMIT,
            Some(text) => {
                let n: i64 = text.trim().parse().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_query",
                        "query parameter `limit` must be a number",
                    )
                })?;
                u32::try_from(n.clamp(1, i64::from(MAX_LIMIT))).unwrap_or(DEFAULT_LIMIT)
            }
        };
        let cursor = query_value(raw_query, "cursor").filter(|c| !c.is_empty());
        Ok(Self { limit, cursor })
    }

    /// The decoded cursor position, `None` on the first page.
    pub fn after<K: DeserializeOwned>(&self) -> ApiResult<Option<K>> {
        self.cursor.as_deref().map(decode_cursor).transpose()
    }

    /// How many rows to fetch: one more than the limit, to learn whether a next page exists.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Cuts `rows` (fetched with [`Self::fetch_limit`]) to the page and computes the next cursor
    /// from the last item's key.
    pub fn finish<T, K: Serialize>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> K,
    ) -> ApiResult<Page<T>> {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|last| encode_cursor(&key(last)))
                .transpose()?
        } else {
            None
        };
        Ok(Page {
            items: rows,
            next_cursor,
            total: None,
        })
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// One column of a keyset order: an SQL expression and its direction. The last column of an
/// order must be unique (the row id), so the order is total and a cursor names one position.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub expr: &'static str,
    pub desc: bool,
}

pub const fn asc(expr: &'static str) -> Key {
    Key { expr, desc: false }
}

pub const fn desc(expr: &'static str) -> Key {
    Key { expr, desc: true }
}

/// A keyset-paged `SELECT`: conditions are added with [`Paged::and`], values bound by number with
/// [`Paged::bind`] (`?N`, so one value serves several places); [`Paged::fetch`] adds the cursor's
/// condition, the order and the limit, runs it and cuts the page.
pub struct Paged {
    select: String,
    conditions: Vec<String>,
    params: Vec<Value>,
}

impl Paged {
    /// `select` is `SELECT … FROM …` (with joins), without `WHERE`.
    pub fn new(select: impl Into<String>) -> Self {
        Self {
            select: select.into(),
            conditions: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Binds a value; returns its placeholder (`?N`).
    pub fn bind(&mut self, value: impl Into<Value>) -> String {
        self.params.push(value.into());
        format!("?{}", self.params.len())
    }

    /// Adds a condition (joined with `AND`).
    pub fn and(&mut self, condition: impl Into<String>) -> &mut Self {
        self.conditions.push(condition.into());
        self
    }

    /// Adds a condition written with plain `?` placeholders and their values. SQLite numbers a
    /// plain `?` one above the largest number so far, and conditions are joined in the order
    /// they are added, so these line up with the values appended here.
    pub fn and_with(&mut self, condition: &str, values: Vec<Value>) -> &mut Self {
        self.conditions.push(condition.to_owned());
        self.params.extend(values);
        self
    }

    /// Runs the page after the cursor in `order`; `decode` reads a row, `key` gives an item's
    /// values of `order`'s columns, in order (the next cursor). A cursor that does not fit the
    /// order is a 400.
    pub fn fetch<T, E, K: Serialize>(
        self,
        db: &Database,
        page: &PageRequest,
        order: &[Key],
        decode: impl Fn(&Row<'_>) -> Result<T, E>,
        key: impl Fn(&T) -> K,
    ) -> ApiResult<Page<T>>
    where
        ApiError: From<E>,
    {
        let items = self.run(db, page, order)?.decode(decode)?;
        page.finish(items, key)
    }

    /// The query with the cursor's condition, the order and the limit, run (not generic, so it
    /// is compiled once however many lists page).
    fn run(mut self, db: &Database, page: &PageRequest, order: &[Key]) -> ApiResult<Rows> {
        if let Some(after) = page.after::<Vec<serde_json::Value>>()? {
            let condition = self.after(order, after)?;
            self.conditions.push(condition);
        }
        let order_by: Vec<String> = order
            .iter()
            .map(|k| format!("{}{}", k.expr, if k.desc { " DESC" } else { "" }))
            .collect();
        let limit = self.bind(page.fetch_limit());
        let mut sql = self.select;
        if !self.conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.conditions.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", order_by.join(", ")));
        Ok(db.execute(&sql, &self.params)?)
    }

    /// `(a > ?1 OR (a = ?1 AND (b > ?2 OR (b = ?2 AND …))))`, `<` for descending columns.
    fn after(&mut self, order: &[Key], values: Vec<serde_json::Value>) -> ApiResult<String> {
        let invalid = || ApiError::bad_request("invalid_cursor", "cursor is not valid");
        if values.len() != order.len() {
            return Err(invalid());
        }
        let mut placeholders = Vec::with_capacity(values.len());
        for value in values {
            let bound = match value {
                serde_json::Value::String(s) => Value::from(s),
                serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => Value::from(i),
                    (None, Some(f)) => Value::from(f),
                    (None, None) => return Err(invalid()),
                },
                _ => return Err(invalid()),
            };
            placeholders.push(self.bind(bound));
        }
        let mut condition = String::new();
        for (i, (k, p)) in order.iter().zip(&placeholders).enumerate().rev() {
            let beyond = if k.desc { "<" } else { ">" };
            condition = if i + 1 == order.len() {
                format!("{} {beyond} {p}", k.expr)
            } else {
                format!(
                    "({e} {beyond} {p} OR ({e} = {p} AND {condition}))",
                    e = k.expr
                )
            };
        }
        Ok(condition)
    }
}

pub fn encode_cursor<K: Serialize>(key: &K) -> ApiResult<String> {
    let json =
        serde_json::to_vec(key).map_err(|e| ApiError::internal(format!("encode cursor: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

pub fn decode_cursor<K: DeserializeOwned>(cursor: &str) -> ApiResult<K> {
    let invalid = || ApiError::bad_request("invalid_cursor", "cursor is not valid");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_clamps() {
        assert_eq!(PageRequest::from_query("").unwrap().limit, 50);
        assert_eq!(PageRequest::from_query("limit=10").unwrap().limit, 10);
        assert_eq!(PageRequest::from_query("limit=1000").unwrap().limit, 200);
        assert_eq!(PageRequest::from_query("limit=0").unwrap().limit, 1);
        assert_eq!(PageRequest::from_query("limit=-5").unwrap().limit, 1);
        assert_eq!(
            PageRequest::from_query("limit=ten").unwrap_err().code,
            "invalid_query"
        );
    }

    #[test]
    fn pages_through_with_opaque_cursors() {
        let all: Vec<i64> = (1..=5).collect();
        let req = PageRequest::from_query("limit=2").unwrap();
        let first: Vec<i64> = all
            .iter()
            .copied()
            .take(req.fetch_limit() as usize)
            .collect();
        let page = req.finish(first, |v| *v).unwrap();
        assert_eq!(page.items, vec![1, 2]);
        let cursor = page.next_cursor.unwrap();
        let req = PageRequest::from_query(&format!("limit=2&cursor={cursor}")).unwrap();
        let after: i64 = req.after().unwrap().unwrap();
        assert_eq!(after, 2);
        let rest: Vec<i64> = all.iter().copied().filter(|v| *v > after).take(3).collect();
        let page = req.finish(rest, |v| *v).unwrap();
        assert_eq!(page.items, vec![3, 4]);
        let after: i64 = decode_cursor(&page.next_cursor.unwrap()).unwrap();
        let last = req.finish(vec![5], |v| *v).unwrap();
        assert_eq!(after, 4);
        assert_eq!(last.next_cursor, None);
    }

    /// Paging through a composite order (descending then ascending, duplicate sort values,
    /// numbers and text) visits every row once, in the order of one unpaged query.
    #[cfg(feature = "native")]
    #[test]
    fn keyset_pages_visit_every_row_once_in_order() {
        use crate::store::native::NativeSql;
        use crate::store::SqlOpener;
        let sql = NativeSql::temp();
        let db = Database::from_connection(sql.open().unwrap());
        db.execute(
            "CREATE TABLE t (id TEXT, n INTEGER, name TEXT, org TEXT)",
            &[],
        )
        .unwrap();
        for i in 0..23 {
            db.execute(
                "INSERT INTO t VALUES (?, ?, ?, ?)",
                &[
                    Value::from(format!("id{i:02}")),
                    Value::from(i % 4),
                    Value::from(format!("n{}", i % 3)),
                    Value::from(if i == 7 { "other" } else { "mine" }),
                ],
            )
            .unwrap();
        }
        const ORDER: &[Key] = &[desc("n"), asc("lower(name)"), asc("id")];
        let all: Vec<String> = db
            .execute(
                "SELECT id FROM t WHERE org = 'mine' ORDER BY n DESC, lower(name), id",
                &[],
            )
            .unwrap()
            .decode(|r| r.str("id").map(str::to_owned))
            .unwrap();
        let mut seen = Vec::new();
        let mut query = "limit=4".to_owned();
        loop {
            let page = PageRequest::from_query(&query).unwrap();
            let mut q = Paged::new("SELECT id, n, name FROM t");
            let org = q.bind("mine");
            q.and(format!("org = {org}"));
            let got = q
                .fetch(
                    &db,
                    &page,
                    ORDER,
                    |r| {
                        Ok::<_, crate::store::StoreError>((
                            r.str("id")?.to_owned(),
                            r.i64("n")?,
                            r.str("name")?.to_owned(),
                        ))
                    },
                    |(id, n, name)| (*n, name.to_lowercase(), id.clone()),
                )
                .unwrap();
            assert!(got.items.len() <= 4);
            seen.extend(got.items.into_iter().map(|(id, _, _)| id));
            match got.next_cursor {
                Some(c) => query = format!("limit=4&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), 22);
        assert_eq!(seen, all);
        // A cursor of another shape is a 400, not a silent first page.
        let wrong = encode_cursor(&("x", "y")).unwrap();
        let page = PageRequest::from_query(&format!("cursor={wrong}")).unwrap();
        let err = Paged::new("SELECT id FROM t")
            .fetch(
                &db,
                &page,
                ORDER,
                |r| r.str("id").map(str::to_owned),
                |id| id.clone(),
            )
            .unwrap_err();
        assert_eq!(err.code, "invalid_cursor");
    }

    #[test]
    fn malformed_cursor_is_400() {
        let req = PageRequest::from_query("cursor=!!!").unwrap();
        assert_eq!(req.after::<i64>().unwrap_err().code, "invalid_cursor");
        let req = PageRequest::from_query("cursor=aGVsbG8").unwrap();
        assert_eq!(req.after::<i64>().unwrap_err().code, "invalid_cursor");
    }

    #[test]
    fn page_json_shape() {
        let page = Page {
            items: vec![1],
            next_cursor: None,
            total: None,
        };
        assert_eq!(
            serde_json::to_string(&page).unwrap(),
            r#"{"items":[1],"next_cursor":null}"#
        );
    }
}
