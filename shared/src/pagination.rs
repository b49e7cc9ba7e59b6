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
