//! Repository sync on Spin (SPEC-wave2 §2.4): no git, no filesystem, GitHub's HTTP API.
//!
//! 1. **Claim** a lease with one `UPDATE … RETURNING` (nothing returned: another sync holds it);
//!    a crashed sync's lease simply expires.
//! 2. **Resolve** the branch's commit (one API call); the commit of the last successful sync
//!    (without `force`) only marks the repository synced.
//! 3. **Tree**: the recursive tree (one API call); `truncated` fails the sync.
//! 4. **Candidates** ([`files::candidates`]); files over 256 KiB are warnings.
//! 5. **Fetch** only blobs whose sha differs from the memo (`repository_files`), from the raw host,
//!    at most [`CONCURRENCY`] at a time, within [`MAX_TOTAL_BYTES`] and the [`BUDGET_MS`] budget.
//! 6. **Parse** every document ([`files::parse_file`]); 7. **duplicates**: the first by path wins.
//! 8. **Commit** in one short transaction: upserts, deletes (even when nothing remains), the memo
//!    replaced, the repository `synced`, the lease released.
//! 9. **Failure** at any step: `failed` with a sanitised error ([`sanitize`]); the previous catalog
//!    and `last_sync_commit` stay; the lease is released.
//!
//! **No outbound call runs inside a transaction.** A sync runs while the request's unit of work
//! is stepped out of ([`Database::outside_unit`]): the claim autocommits, the outbound calls hold
//! no lock, and the commit is its own short `BEGIN IMMEDIATE … COMMIT`. (Inside the request's
//! deferred unit the claim's `UPDATE` would open the unit and hold SQLite's write lock across every
//! call to GitHub.)
//!
//! `last_sync_at` is the time the successful sync **started** (its claim), so a sync requested
//! while one runs (`sync_requested_at` later than that) is still drained afterwards.

pub mod files;
pub mod github;
pub mod sanitize;

use std::task::Poll;

use serde::Serialize;
use shared::ids::uuid_v4;
use shared::secrets::seal::{self, SealKey};
use shared::services::Services;
use shared::store::{Clock, Database, LocalFuture, Random, StoreError, Value as Sql};

use self::files::{Candidate, Found, Parsed, Warning};
use self::github::{GitHub, RepoProvider};

/// How long a claim holds the repository (a crashed sync's claim expires after it).
pub const LEASE_MS: i64 = 60_000;
/// The whole sync's time budget (fits the 30 s request limits of Fermyon Cloud and Akamai).
pub const BUDGET_MS: i64 = 25_000;
/// All fetched bodies together.
pub const MAX_TOTAL_BYTES: u64 = 16 << 20;
/// Raw fetches in flight at once.
pub const CONCURRENCY: usize = 8;
/// Warnings kept in `sync_warnings`.
pub const MAX_STORED_WARNINGS: usize = 50;

/// Why a sync failed (stored sanitised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncError(pub String);

impl SyncError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> Self {
        Self(format!("database: {}", e.message))
    }
}

/// A repository this sync holds the lease of.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: String,
    pub org_id: String,
    pub url_key: String,
    pub branch: String,
    pub auth_type: String,
    pub auth_secret_sealed: Option<Vec<u8>>,
    pub last_sync_commit: Option<String>,
    /// When the claim was taken.
    pub claimed_at: i64,
    pub lease_until: i64,
}

/// What one sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncResult {
    /// The repository, in batch answers (`POST /catalog/sync`, `…/sync/pending`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `synced`, `unchanged` (same commit as the last sync) or `failed`.
    pub status: &'static str,
    pub commit: Option<String>,
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub warnings: Vec<Warning>,
    /// Calls to GitHub's API (rate-limited) and to the raw host (not).
    pub api_calls: u32,
    pub raw_fetches: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A sync that ran, or found the lease taken.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Another sync holds the lease.
    Busy,
    Ran(SyncResult),
}

/// Takes the repository's lease (one statement). `None`: unknown id, or the lease is held.
pub fn claim(db: &Database, id: &str, now: i64) -> Result<Option<Claim>, StoreError> {
    let lease_until = now + LEASE_MS;
    let rows = db.execute(
        "UPDATE repositories SET status = 'syncing', sync_lease_until = ?2, updated_at = ?3
         WHERE id = ?1 AND (sync_lease_until IS NULL OR sync_lease_until < ?3)
         RETURNING id, org_id, url_key, branch, auth_type, auth_secret_sealed, last_sync_commit",
        &[id.into(), lease_until.into(), now.into()],
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let sealed = match row.value("auth_secret_sealed")? {
        Sql::Null => None,
        _ => Some(row.blob("auth_secret_sealed")?.to_vec()),
    };
    Ok(Some(Claim {
        id: row.str("id")?.to_owned(),
        org_id: row.str("org_id")?.to_owned(),
        url_key: row.str("url_key")?.to_owned(),
        branch: row.str("branch")?.to_owned(),
        auth_type: row.str("auth_type")?.to_owned(),
        auth_secret_sealed: sealed,
        last_sync_commit: row.opt_str("last_sync_commit")?.map(str::to_owned),
        claimed_at: now,
        lease_until,
    }))
}

/// Syncs one repository now: claim, fetch, commit (see the module documentation). `deadline`
/// (ms) bounds it further when several syncs share one request. `Err` only when the claim itself
/// fails (a store error); any later failure is recorded on the repository and reported in the
/// result.
pub async fn sync_repository(
    services: &Services,
    id: &str,
    force: bool,
    deadline: i64,
) -> Result<Outcome, StoreError> {
    let db = services.db()?;
    // Every statement below autocommits or is its own short transaction: the write lock is
    // never held across an outbound call.
    let _outside = db.outside_unit()?;
    let started = services.now_ms();
    let Some(claim) = claim(db, id, started)? else {
        return Ok(Outcome::Busy);
    };
    let deadline = deadline.min(started + BUDGET_MS);
    let settings = services.settings();
    let github_token = settings.raw("github_token").ok().flatten();
    let mut secrets: Vec<String> = github_token.iter().cloned().collect();
    let mut result = SyncResult::default();
    let outcome = async {
        let credential = open_credential(services, &claim, &mut secrets)?;
        let (owner, repo) = github::owner_repo(&claim.url_key)
            .ok_or_else(|| SyncError::new("the repository URL names no owner/repo"))?;
        let location = |name: &str, default: &str| -> Result<String, SyncError> {
            let value = settings
                .raw(name)
                .map_err(|e| SyncError::new(e.message))?
                .unwrap_or_else(|| default.to_owned());
            Ok(value.trim_end_matches('/').to_owned())
        };
        let provider = GitHub {
            outbound: services.outbound.as_ref(),
            api_url: location("github_api_url", "https://api.github.com")?,
            raw_url: location("github_raw_url", "https://raw.githubusercontent.com")?,
            owner,
            repo,
            branch: claim.branch.clone(),
            credential,
            api_token: github_token.as_ref().map(|t| format!("Bearer {t}")),
        };
        let env = Env {
            db,
            clock: services.clock.as_ref(),
            random: services.random.as_ref(),
            deadline,
        };
        run(&env, &provider, &claim, force, &mut result).await
    }
    .await;
    if let Err(err) = outcome {
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let message = sanitize::sanitize(&err.0, &refs);
        record_failure(db, &claim, &message, services.now_ms())?;
        result.status = "failed";
        result.error = Some(message);
    }
    Ok(Outcome::Ran(result))
}

/// The repository's credential as an `Authorization` value (its parts go to `secrets`, so an
/// error can never echo them).
fn open_credential(
    services: &Services,
    claim: &Claim,
    secrets: &mut Vec<String>,
) -> Result<Option<String>, SyncError> {
    if claim.auth_type == "none" {
        return Ok(None);
    }
    let Some(sealed) = &claim.auth_secret_sealed else {
        return Err(SyncError::new("the repository's credential is missing"));
    };
    let secret = open_sealed(services, claim, sealed)?;
    secrets.push(secret.clone());
    secrets.extend(secret.split(':').map(str::to_owned));
    let header = match claim.auth_type.as_str() {
        "token" => format!("Bearer {secret}"),
        "basic" => format!("Basic {}", github::base64(secret.as_bytes())),
        other => return Err(SyncError::new(format!("unsupported auth type {other}"))),
    };
    secrets.push(header.clone());
    Ok(Some(header))
}

/// Opens `auth_secret_sealed` with `repository_secret_key` (bound to this repository's id).
fn open_sealed(services: &Services, claim: &Claim, sealed: &[u8]) -> Result<String, SyncError> {
    let cannot =
        || SyncError::new("the repository's credential cannot be opened (repository_secret_key)");
    let key = SealKey::from_settings(&services.settings())
        .map_err(|_| cannot())?
        .ok_or_else(cannot)?;
    let plain =
        seal::open(&key, seal::PURPOSE_AUTH_SECRET, &claim.id, sealed).map_err(|_| cannot())?;
    String::from_utf8(plain).map_err(|_| cannot())
}

/// What the engine needs besides the provider.
pub struct Env<'a> {
    pub db: &'a Database,
    pub clock: &'a dyn Clock,
    pub random: &'a dyn Random,
    /// No new step starts after it (ms).
    pub deadline: i64,
}

impl Env<'_> {
    fn within_budget(&self) -> Result<(), SyncError> {
        if self.clock.now_ms() > self.deadline {
            return Err(SyncError::new("sync time budget exceeded"));
        }
        Ok(())
    }
}

/// Rows keyed by a text column, loaded `ORDER BY` it (SQLite's `BINARY` collation is byte
/// order, as `str`'s `Ord` is), looked up by binary search. (A hash map per value type would
/// cost the component more code than this.)
struct Sorted<V>(Vec<(String, V)>);

impl<V> Sorted<V> {
    fn get(&self, key: &str) -> Option<&V> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }
}

/// A memo row: what a blob held the last time it was read.
#[derive(Debug, Clone)]
struct Memo {
    blob_sha: String,
    outcome: String,
    detail: String,
}

/// The memo's `detail`: the names of a file's templates and its warnings, as JSON (read back
/// field by field: a derived deserializer would cost the component more code).
#[derive(Debug, Clone, Default, Serialize)]
struct Detail {
    templates: Vec<String>,
    warnings: Vec<Warning>,
}

impl Detail {
    /// `None` for a detail this version cannot read (the file is then fetched again).
    fn read(text: &str) -> Option<Detail> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let templates = value
            .get("templates")?
            .as_array()?
            .iter()
            .map(|n| n.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        let warnings = value
            .get("warnings")?
            .as_array()?
            .iter()
            .map(|w| {
                Some(Warning {
                    path: w.get("path")?.as_str()?.to_owned(),
                    doc: match w.get("doc") {
                        None => None,
                        Some(d) => Some(usize::try_from(d.as_u64()?).ok()?),
                    },
                    reason: w.get("reason")?.as_str()?.to_owned(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Detail {
            templates,
            warnings,
        })
    }
}

/// A stored catalog row of the repository.
#[derive(Debug, Clone)]
struct Stored {
    manifest_sha256: String,
    source_path: String,
}

/// A candidate's outcome: known from the memo, or read in this sync.
enum Slot {
    Known {
        found: Vec<Found>,
        warnings: Vec<Warning>,
        memo: Option<(String, Memo)>,
    },
    /// Read in this sync: the candidate's index.
    Fetch(usize),
}

/// Steps 2–8 for a claimed repository; fills `result` as it goes.
pub async fn run(
    env: &Env<'_>,
    provider: &dyn RepoProvider,
    claim: &Claim,
    force: bool,
    result: &mut SyncResult,
) -> Result<(), SyncError> {
    result.api_calls += 1;
    let commit = provider.resolve_commit().await?;
    result.commit = Some(commit.clone());
    if !force && claim.last_sync_commit.as_deref() == Some(commit.as_str()) {
        mark_unchanged(env.db, claim, env.clock.now_ms())?;
        result.status = "unchanged";
        return Ok(());
    }
    env.within_budget()?;
    result.api_calls += 1;
    let tree = provider.tree(&commit).await?;
    let candidates = files::candidates(tree).map_err(SyncError)?;
    env.within_budget()?;

    let memo = load_memo(env.db, &claim.id)?;
    let stored = load_stored(env.db, &claim.id)?;
    // Files read in this sync, by path. A second round runs only when an unchanged file whose
    // template lost a duplicate contest (so it was never stored) now wins it: that file alone is
    // fetched then.
    let mut fetched: Vec<Option<Parsed>> = candidates.iter().map(|_| None).collect();
    let mut refetch: Vec<bool> = vec![false; candidates.len()];
    let (kept, memo_rows, warnings) = loop {
        let mut slots = Vec::with_capacity(candidates.len());
        let mut to_fetch: Vec<(usize, &Candidate)> = Vec::new();
        let mut to_fetch_bytes: u64 = 0;
        for (i, c) in candidates.iter().enumerate() {
            if c.size > files::MAX_FILE_BYTES {
                slots.push(Slot::Known {
                    found: Vec::new(),
                    warnings: vec![Warning::file(
                        &c.path,
                        format!("file too large ({} bytes; the limit is 256 KiB)", c.size),
                    )],
                    memo: None,
                });
                continue;
            }
            if !refetch[i] && fetched[i].is_none() {
                if let Some(slot) = reuse(c, memo.get(&c.path), &stored) {
                    slots.push(slot);
                    continue;
                }
            }
            slots.push(Slot::Fetch(i));
            if fetched[i].is_none() {
                to_fetch.push((i, c));
                to_fetch_bytes += c.size;
            }
        }
        if to_fetch_bytes > MAX_TOTAL_BYTES {
            return Err(SyncError::new(
                "repository files too large (more than 16 MiB to fetch)",
            ));
        }
        fetch_all(env, provider, &commit, &to_fetch, &mut fetched, result).await?;

        // Steps 6–7: every file in path order, then duplicates.
        let mut found: Vec<Found> = Vec::new();
        let mut memo_rows: Vec<(String, Memo)> = Vec::new();
        let mut warnings: Vec<Warning> = Vec::new();
        for slot in slots {
            match slot {
                Slot::Known {
                    found: f,
                    warnings: w,
                    memo,
                } => {
                    found.extend(f);
                    warnings.extend(w);
                    memo_rows.extend(memo);
                }
                Slot::Fetch(i) => {
                    let c = &candidates[i];
                    let parsed = fetched[i]
                        .as_ref()
                        .ok_or_else(|| SyncError::new("a file fetch did not complete"))?;
                    let detail = Detail {
                        templates: parsed.templates.iter().map(|m| m.name.clone()).collect(),
                        warnings: parsed.warnings.clone(),
                    };
                    memo_rows.push((
                        c.path.clone(),
                        Memo {
                            blob_sha: c.blob_sha.clone(),
                            outcome: parsed.outcome().to_owned(),
                            detail: serde_json::to_string(&detail).unwrap_or_default(),
                        },
                    ));
                    warnings.extend(parsed.warnings.iter().cloned());
                    found.extend(parsed.templates.iter().map(|m| Found {
                        path: c.path.clone(),
                        name: m.name.clone(),
                        manifest: Some(m.clone()),
                        stored: false,
                    }));
                }
            }
        }
        let kept = files::dedupe(found, &mut warnings);
        let mut missing = false;
        for f in kept.iter().filter(|f| f.manifest.is_none() && !f.stored) {
            if let Ok(i) = candidates.binary_search_by(|c| c.path.as_str().cmp(&f.path)) {
                missing |= !refetch[i];
                refetch[i] = true;
            }
        }
        if !missing {
            break (kept, memo_rows, warnings);
        }
    };
    if kept.iter().any(|f| f.manifest.is_none() && !f.stored) {
        return Err(SyncError::new("a template's file could not be read again"));
    }
    result.warnings = warnings;
    if kept.len() > files::MAX_TEMPLATES {
        return Err(SyncError::new(format!(
            "too many templates (more than {})",
            files::MAX_TEMPLATES
        )));
    }
    env.within_budget()?;
    commit_sync(env, claim, &commit, &kept, &memo_rows, result)?;
    result.status = "synced";
    Ok(())
}

/// A raw fetch in flight.
type Fetch<'a> = LocalFuture<'a, Result<Vec<u8>, SyncError>>;

/// Step 5: fetches `to_fetch` (at most [`CONCURRENCY`] in flight, within the budget and
/// [`MAX_TOTAL_BYTES`]) and parses each body into `fetched`.
async fn fetch_all(
    env: &Env<'_>,
    provider: &dyn RepoProvider,
    commit: &str,
    to_fetch: &[(usize, &Candidate)],
    fetched: &mut [Option<Parsed>],
    result: &mut SyncResult,
) -> Result<(), SyncError> {
    env.within_budget()?;
    let mut received: u64 = 0;
    // At most CONCURRENCY requests in flight: a small hand-rolled pool over the provider's boxed
    // futures (cheaper in code than `futures`' `buffer_unordered`), each completion checked
    // against the budget.
    let mut queue = to_fetch.iter();
    let mut running: Vec<(usize, &Candidate, Fetch<'_>)> = Vec::with_capacity(CONCURRENCY);
    loop {
        while running.len() < CONCURRENCY {
            let Some(&(i, c)) = queue.next() else { break };
            running.push((i, c, provider.raw(commit, &c.path)));
        }
        if running.is_empty() {
            break;
        }
        let (done, body) = std::future::poll_fn(|cx| {
            for (k, (_, _, fetch)) in running.iter_mut().enumerate() {
                if let Poll::Ready(body) = fetch.as_mut().poll(cx) {
                    return Poll::Ready((k, body));
                }
            }
            Poll::Pending
        })
        .await;
        let (i, c, _) = running.swap_remove(done);
        result.raw_fetches += 1;
        let body = body?;
        env.within_budget()?;
        received += body.len() as u64;
        if received > MAX_TOTAL_BYTES {
            return Err(SyncError::new(
                "repository files too large (more than 16 MiB fetched)",
            ));
        }
        let parsed = if body.len() as u64 > c.size {
            let mut parsed = Parsed::default();
            parsed
                .warnings
                .push(Warning::file(&c.path, "file larger than the tree says"));
            parsed
        } else {
            files::parse_file(&c.path, &body)
        };
        if let Some(slot) = fetched.get_mut(i) {
            *slot = Some(parsed);
        }
    }
    Ok(())
}

/// A candidate whose blob is unchanged since it was last read: its memo stands (its warnings
/// again, its templates as they are stored). A template of it that lost a duplicate contest was
/// never stored; should it win now, the file is fetched in a second round.
fn reuse(c: &Candidate, memo: Option<&Memo>, stored: &Sorted<Stored>) -> Option<Slot> {
    let memo = memo.filter(|m| m.blob_sha == c.blob_sha)?;
    let detail = Detail::read(&memo.detail)?;
    Some(Slot::Known {
        found: detail
            .templates
            .iter()
            .map(|name| Found {
                path: c.path.clone(),
                name: name.clone(),
                manifest: None,
                stored: stored.get(name).is_some_and(|s| s.source_path == c.path),
            })
            .collect(),
        warnings: detail.warnings,
        memo: Some((c.path.clone(), memo.clone())),
    })
}

fn load_memo(db: &Database, id: &str) -> Result<Sorted<Memo>, StoreError> {
    let rows = db.execute(
        "SELECT path, blob_sha, outcome, detail FROM repository_files WHERE repository_id = ?1
         ORDER BY path",
        &[id.into()],
    )?;
    rows.iter()
        .map(|r| {
            Ok((
                r.str("path")?.to_owned(),
                Memo {
                    blob_sha: r.str("blob_sha")?.to_owned(),
                    outcome: r.str("outcome")?.to_owned(),
                    detail: r.str("detail")?.to_owned(),
                },
            ))
        })
        .collect::<Result<_, _>>()
        .map(Sorted)
}

fn load_stored(db: &Database, id: &str) -> Result<Sorted<Stored>, StoreError> {
    let rows = db.execute(
        "SELECT name, manifest_sha256, source_path FROM catalog_templates WHERE repository_id = ?1
         ORDER BY name",
        &[id.into()],
    )?;
    rows.iter()
        .map(|r| {
            Ok((
                r.str("name")?.to_owned(),
                Stored {
                    manifest_sha256: r.str("manifest_sha256")?.to_owned(),
                    source_path: r.str("source_path")?.to_owned(),
                },
            ))
        })
        .collect::<Result<_, _>>()
        .map(Sorted)
}

/// A catalog row to upsert (sent as one JSON array to `json_each`).
#[derive(Serialize)]
struct Upsert<'a> {
    id: String,
    name: &'a str,
    display_name: &'a str,
    description: &'a str,
    category: &'a str,
    app_type: &'a str,
    icon_url: &'a str,
    base_image: &'a str,
    tags: String,
    version: String,
    manifest: &'a str,
    sha: &'a str,
    path: &'a str,
}

/// A memo row to insert (sent as one JSON array to `json_each`).
#[derive(Serialize)]
struct MemoRow<'a> {
    p: &'a str,
    s: &'a str,
    o: &'a str,
    d: &'a str,
}

/// The catalog's `version` of a manifest: `spec.version` when it is a short string.
fn version_of(document: &serde_json::Value) -> String {
    document
        .pointer("/spec/version")
        .and_then(serde_json::Value::as_str)
        .filter(|v| !v.is_empty() && v.len() <= 50)
        .unwrap_or("1.0.0")
        .to_owned()
}

/// Step 8, in one transaction: the lease is checked (still ours), the repository marked
/// synced, changed templates upserted, vanished ones deleted (even when none remain), the memo
/// replaced.
fn commit_sync(
    env: &Env<'_>,
    claim: &Claim,
    commit: &str,
    kept: &[Found],
    memo_rows: &[(String, Memo)],
    result: &mut SyncResult,
) -> Result<(), SyncError> {
    let now = env.clock.now_ms();
    let stored_warnings: Vec<&Warning> = result.warnings.iter().take(MAX_STORED_WARNINGS).collect();
    let warnings_json =
        serde_json::to_string(&stored_warnings).map_err(|e| SyncError::new(e.to_string()))?;
    // Ids for new rows are drawn before the transaction (no host call inside it but SQL).
    let mut ids = Vec::with_capacity(kept.len());
    for _ in kept.iter().filter(|f| f.manifest.is_some()) {
        ids.push(uuid_v4(env.random)?);
    }
    let counts = env
        .db
        .transaction(|db| -> Result<(u64, u64, u64, u64), SyncError> {
            db.execute(
            "UPDATE repositories SET status = 'synced', last_sync_commit = ?2, last_sync_at = ?3,
                 template_count = ?4, sync_warnings = ?5, error_message = NULL,
                 sync_lease_until = NULL, updated_at = ?6
             WHERE id = ?1 AND sync_lease_until = ?7",
            &[
                claim.id.as_str().into(),
                commit.into(),
                claim.claimed_at.into(),
                i64::try_from(kept.len()).unwrap_or(i64::MAX).into(),
                warnings_json.as_str().into(),
                now.into(),
                claim.lease_until.into(),
            ],
        )?;
            if db.changes()? == 0 {
                return Err(SyncError::new(
                    "the sync lease expired before the sync finished",
                ));
            }
            let stored = load_stored(db, &claim.id)?;
            let (mut added, mut updated, mut unchanged) = (0u64, 0u64, 0u64);
            let mut upserts = Vec::new();
            let mut ids = ids.into_iter();
            for f in kept {
                let Some(m) = &f.manifest else {
                    unchanged += 1;
                    continue;
                };
                let id = ids.next().unwrap_or_default();
                match stored.get(&f.name) {
                    Some(s) if s.manifest_sha256 == m.sha256 && s.source_path == f.path => {
                        unchanged += 1;
                        continue;
                    }
                    Some(_) => updated += 1,
                    None => added += 1,
                }
                upserts.push(Upsert {
                    id,
                    name: &m.name,
                    display_name: &m.display_name,
                    description: &m.description,
                    category: &m.category,
                    app_type: m.app_type,
                    icon_url: &m.icon_url,
                    base_image: &m.base_image,
                    tags: serde_json::to_string(&m.tags).unwrap_or_else(|_| "[]".into()),
                    version: version_of(&m.document),
                    manifest: &m.canonical,
                    sha: &m.sha256,
                    path: &f.path,
                });
            }
            if !upserts.is_empty() {
                let upserts =
                    serde_json::to_string(&upserts).map_err(|e| SyncError::new(e.to_string()))?;
                db.execute(
                    "INSERT INTO catalog_templates (id, org_id, repository_id, name, display_name,
                     description, category, app_type, icon_url, base_image, tags, version, manifest,
                     manifest_sha256, source_path, created_at, updated_at)
                 SELECT json_extract(value, '$.id'), ?1, ?2, json_extract(value, '$.name'),
                     json_extract(value, '$.display_name'), json_extract(value, '$.description'),
                     json_extract(value, '$.category'), json_extract(value, '$.app_type'),
                     json_extract(value, '$.icon_url'), json_extract(value, '$.base_image'),
                     json_extract(value, '$.tags'), json_extract(value, '$.version'),
                     json_extract(value, '$.manifest'), json_extract(value, '$.sha'),
                     json_extract(value, '$.path'), ?3, ?3
                 FROM json_each(?4) WHERE true
                 ON CONFLICT (repository_id, name) DO UPDATE SET
                     display_name = excluded.display_name, description = excluded.description,
                     category = excluded.category, app_type = excluded.app_type,
                     icon_url = excluded.icon_url, base_image = excluded.base_image,
                     tags = excluded.tags, version = excluded.version, manifest = excluded.manifest,
                     manifest_sha256 = excluded.manifest_sha256, source_path = excluded.source_path,
                     updated_at = excluded.updated_at",
                    &[
                        claim.org_id.as_str().into(),
                        claim.id.as_str().into(),
                        now.into(),
                        upserts.as_str().into(),
                    ],
                )?;
            }
            // Templates no longer present go, even when none remain (FIX: StreamSpace deleted only
            // when the new set was not empty).
            let names: Vec<&str> = kept.iter().map(|f| f.name.as_str()).collect();
            let names = serde_json::to_string(&names).map_err(|e| SyncError::new(e.to_string()))?;
            db.execute(
                "DELETE FROM catalog_templates WHERE repository_id = ?1
                 AND name NOT IN (SELECT value FROM json_each(?2))",
                &[claim.id.as_str().into(), names.as_str().into()],
            )?;
            let removed = db.changes()?;
            db.execute(
                "DELETE FROM repository_files WHERE repository_id = ?1",
                &[claim.id.as_str().into()],
            )?;
            if !memo_rows.is_empty() {
                let rows: Vec<MemoRow<'_>> = memo_rows
                    .iter()
                    .map(|(path, m)| MemoRow {
                        p: path,
                        s: &m.blob_sha,
                        o: &m.outcome,
                        d: &m.detail,
                    })
                    .collect();
                let rows =
                    serde_json::to_string(&rows).map_err(|e| SyncError::new(e.to_string()))?;
                db.execute(
                    "INSERT INTO repository_files (repository_id, path, blob_sha, outcome, detail)
                 SELECT ?1, json_extract(value, '$.p'), json_extract(value, '$.s'),
                     json_extract(value, '$.o'), json_extract(value, '$.d')
                 FROM json_each(?2)",
                    &[claim.id.as_str().into(), rows.as_str().into()],
                )?;
            }
            Ok((added, updated, removed, unchanged))
        })?;
    (
        result.added,
        result.updated,
        result.removed,
        result.unchanged,
    ) = counts;
    Ok(())
}

/// The branch still points at the last synced commit: synced again, nothing else changes.
fn mark_unchanged(db: &Database, claim: &Claim, now: i64) -> Result<(), StoreError> {
    db.execute(
        "UPDATE repositories SET status = 'synced', last_sync_at = ?2, error_message = NULL,
             sync_lease_until = NULL, updated_at = ?3
         WHERE id = ?1 AND sync_lease_until = ?4",
        &[
            claim.id.as_str().into(),
            claim.claimed_at.into(),
            now.into(),
            claim.lease_until.into(),
        ],
    )?;
    Ok(())
}

/// Step 9: `failed` with the (sanitised) error; the catalog, `last_sync_commit` and
/// `last_sync_at` stay; the lease is released; a request this attempt served is cleared (the
/// drain then retries the repository after `catalog_sync_interval_seconds`, not every minute).
fn record_failure(db: &Database, claim: &Claim, message: &str, now: i64) -> Result<(), StoreError> {
    db.execute(
        "UPDATE repositories SET status = 'failed', error_message = ?2, sync_lease_until = NULL,
             updated_at = ?3,
             sync_requested_at = CASE WHEN sync_requested_at <= ?4 THEN NULL
                 ELSE sync_requested_at END
         WHERE id = ?1 AND sync_lease_until = ?5",
        &[
            claim.id.as_str().into(),
            message.into(),
            now.into(),
            claim.claimed_at.into(),
            claim.lease_until.into(),
        ],
    )?;
    Ok(())
}

/// The repositories `POST /catalog/sync/pending` drains, oldest request first: a sync was
/// requested after the last successful one started; or the last success is older than
/// `interval_ms` (never synced counts as old) and the repository has not failed within it; or a
/// crashed sync left its lease expired.
pub fn pending(
    db: &Database,
    now: i64,
    interval_ms: i64,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = db.execute(
        "SELECT id FROM repositories
         WHERE (sync_lease_until IS NULL OR sync_lease_until < ?1)
           AND ((sync_requested_at IS NOT NULL AND sync_requested_at > coalesce(last_sync_at, 0))
             OR (coalesce(last_sync_at, 0) < ?1 - ?2
                 AND NOT (status = 'failed' AND updated_at >= ?1 - ?2))
             OR status = 'syncing')
         ORDER BY coalesce(sync_requested_at, last_sync_at, 0), id
         LIMIT ?3",
        &[now.into(), interval_ms.into(), limit.into()],
    )?;
    rows.decode(|r| Ok(r.str("id")?.to_owned()))
}

/// Records a sync request for a repository that could not run now (the drain runs it).
pub fn request(db: &Database, id: &str, now: i64) -> Result<(), StoreError> {
    let _outside = db.outside_unit()?;
    db.execute(
        "UPDATE repositories SET sync_requested_at = ?2 WHERE id = ?1",
        &[id.into(), now.into()],
    )?;
    Ok(())
}
