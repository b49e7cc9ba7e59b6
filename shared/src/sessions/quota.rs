//! Quotas (SPEC-wave2 §1.4): effective limits, the check order, the 402 body and the views.
//!
//! Everything here is pure arithmetic over values the caller read in its unit of work; the one
//! database touch is [`LimitRow::from_row`], the decoder of a `quota_limits` row.
//!
//! - Effective limits: user row → org defaults row → built-in, key by key ([`Limits::effective`]).
//! - Admission: [`validate_request`] (400s), then [`check`] in seed 000's order, the first failure
//!   wins and becomes a 402 `quota_exceeded` with the seed's `quota` object
//!   ([`Exceeded::to_api_error`]).
//! - Views: [`me_view`] (`GET /quotas/me`, the seed's nesting) and [`overrides_view`].
//! - Admin writes: [`parse_patch`] (PUT bodies), [`LimitRow::apply`], [`check_consistent`].

use serde_json::{json, Map, Value};

use crate::store::{Row, StoreError};
use crate::validate::{CpuQuantity, MemoryQuantity};
use crate::ApiError;

const KI: u64 = 1 << 10;
const MI: u64 = 1 << 20;
const GI: u64 = 1 << 30;
const TI: u64 = 1 << 40;

/// Request validation (StreamSpace `ValidateResourceRequest` / `ParseGPURequest`).
const MIN_CPU_MILLICORES: u64 = 100;
const MAX_CPU_MILLICORES: u64 = 64_000;
const MIN_MEMORY_BYTES: u64 = 128 * MI;
const MAX_MEMORY_BYTES: u64 = 512 * GI;
const MAX_GPU_REQUEST: u64 = 8;

/// Validation of limits on PUT (the §1.4 table).
const LIMIT_MAX_SESSIONS: u64 = 10_000;
const LIMIT_MAX_CPU: u64 = 1_000_000;
/// StreamSpace `lte=10000000` (MB); we read the MB as MiB.
const LIMIT_MAX_MEMORY: u64 = 10_000_000 * MI;
const LIMIT_MAX_GPU: u64 = 64;
const LIMIT_MAX_STORAGE: u64 = 100 * TI;
const LIMIT_MAX_GPU_PER_SESSION: u64 = 8;

/// One `quota_limits` row: `None` (SQL NULL) inherits the next level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitRow {
    pub max_sessions: Option<i64>,
    pub max_cpu_millicores: Option<i64>,
    pub max_memory_bytes: Option<i64>,
    pub max_gpu: Option<i64>,
    pub max_storage_bytes: Option<i64>,
    pub max_cpu_per_session: Option<i64>,
    pub max_memory_per_session: Option<i64>,
    pub max_gpu_per_session: Option<i64>,
}

impl LimitRow {
    /// The eight limit columns of `quota_limits`, in field order, comma-separated.
    pub const COLUMNS: &str = "max_sessions, max_cpu_millicores, max_memory_bytes, max_gpu, \
                               max_storage_bytes, max_cpu_per_session, max_memory_per_session, \
                               max_gpu_per_session";

    /// Decodes a row that selected [`LimitRow::COLUMNS`].
    pub fn from_row(row: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            max_sessions: row.opt_i64("max_sessions")?,
            max_cpu_millicores: row.opt_i64("max_cpu_millicores")?,
            max_memory_bytes: row.opt_i64("max_memory_bytes")?,
            max_gpu: row.opt_i64("max_gpu")?,
            max_storage_bytes: row.opt_i64("max_storage_bytes")?,
            max_cpu_per_session: row.opt_i64("max_cpu_per_session")?,
            max_memory_per_session: row.opt_i64("max_memory_per_session")?,
            max_gpu_per_session: row.opt_i64("max_gpu_per_session")?,
        })
    }

    /// This row with the patch's present keys applied (`null` clears a key).
    pub fn apply(&self, patch: &LimitPatch) -> LimitRow {
        fn pick(old: Option<i64>, new: Option<Option<i64>>) -> Option<i64> {
            new.unwrap_or(old)
        }
        LimitRow {
            max_sessions: pick(self.max_sessions, patch.max_sessions),
            max_cpu_millicores: pick(self.max_cpu_millicores, patch.max_cpu_millicores),
            max_memory_bytes: pick(self.max_memory_bytes, patch.max_memory_bytes),
            max_gpu: pick(self.max_gpu, patch.max_gpu),
            max_storage_bytes: pick(self.max_storage_bytes, patch.max_storage_bytes),
            max_cpu_per_session: pick(self.max_cpu_per_session, patch.max_cpu_per_session),
            max_memory_per_session: pick(self.max_memory_per_session, patch.max_memory_per_session),
            max_gpu_per_session: pick(self.max_gpu_per_session, patch.max_gpu_per_session),
        }
    }

    /// No key set: the row overrides nothing (the caller may delete it).
    pub fn is_empty(&self) -> bool {
        *self == LimitRow::default()
    }
}

/// The effective limits of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub sessions: u64,
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    pub gpu: u64,
    pub storage_bytes: u64,
    pub cpu_per_session: u64,
    pub memory_per_session: u64,
    pub gpu_per_session: u64,
}

impl Limits {
    /// What StreamSpace's enforcer applies (`quota/enforcer.go`).
    pub const BUILT_IN: Limits = Limits {
        sessions: 5,
        cpu_millicores: 4000,
        memory_bytes: 8 * GI,
        gpu: 0,
        storage_bytes: 50 * GI,
        cpu_per_session: 2000,
        memory_per_session: 4 * GI,
        gpu_per_session: 0,
    };

    /// Key by key: the user row, else the org defaults row, else the built-in. A negative stored
    /// value counts as 0.
    pub fn effective(user: &LimitRow, org: &LimitRow) -> Limits {
        fn pick(user: Option<i64>, org: Option<i64>, built_in: u64) -> u64 {
            user.or(org)
                .map_or(built_in, |v| u64::try_from(v).unwrap_or(0))
        }
        let b = Limits::BUILT_IN;
        Limits {
            sessions: pick(user.max_sessions, org.max_sessions, b.sessions),
            cpu_millicores: pick(
                user.max_cpu_millicores,
                org.max_cpu_millicores,
                b.cpu_millicores,
            ),
            memory_bytes: pick(user.max_memory_bytes, org.max_memory_bytes, b.memory_bytes),
            gpu: pick(user.max_gpu, org.max_gpu, b.gpu),
            storage_bytes: pick(
                user.max_storage_bytes,
                org.max_storage_bytes,
                b.storage_bytes,
            ),
            cpu_per_session: pick(
                user.max_cpu_per_session,
                org.max_cpu_per_session,
                b.cpu_per_session,
            ),
            memory_per_session: pick(
                user.max_memory_per_session,
                org.max_memory_per_session,
                b.memory_per_session,
            ),
            gpu_per_session: pick(
                user.max_gpu_per_session,
                org.max_gpu_per_session,
                b.gpu_per_session,
            ),
        }
    }
}

/// What a user's counted sessions hold now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub sessions: u64,
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    pub gpu: u64,
}

/// The resources of the session being created, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requested {
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    pub gpu: u64,
}

/// Format and range of a session's resources (400 `invalid_field`).
pub fn validate_request(cpu: &str, memory: &str, gpu: i64) -> Result<Requested, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_field", message);
    let cpu_millicores = CpuQuantity::parse(cpu)
        .map_err(|e| invalid(format!("resources.cpu: {e}")))?
        .millicores();
    let memory_bytes = MemoryQuantity::parse(memory)
        .map_err(|e| invalid(format!("resources.memory: {e}")))?
        .bytes();
    if cpu_millicores < MIN_CPU_MILLICORES {
        return Err(invalid("CPU request too low: minimum 100m".into()));
    }
    if cpu_millicores > MAX_CPU_MILLICORES {
        return Err(invalid("CPU request too high: maximum 64000m".into()));
    }
    if memory_bytes < MIN_MEMORY_BYTES {
        return Err(invalid("memory request too low: minimum 128Mi".into()));
    }
    if memory_bytes > MAX_MEMORY_BYTES {
        return Err(invalid("memory request too high: maximum 512Gi".into()));
    }
    let gpu = match u64::try_from(gpu) {
        Ok(g) if g <= MAX_GPU_REQUEST => g,
        _ => {
            return Err(invalid(format!(
                "resources.gpu must be an integer from 0 to {MAX_GPU_REQUEST} (got {gpu})"
            )))
        }
    };
    Ok(Requested {
        cpu_millicores,
        memory_bytes,
        gpu,
    })
}

/// Why admission failed: the seed's 402 `quota` object and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// `sessions|cpu|memory|gpu|cpu_per_session|memory_per_session|gpu_per_session`.
    pub resource: &'static str,
    pub message: String,
    pub limit: String,
    pub current: String,
    pub requested: String,
    pub available: String,
}

impl Exceeded {
    /// 402 `quota_exceeded` with `quota: {limit, current, requested, available, resource}`.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::registered("quota_exceeded", self.message.clone()).with_extra(
            "quota",
            json!({
                "limit": self.limit,
                "current": self.current,
                "requested": self.requested,
                "available": self.available,
                "resource": self.resource,
            }),
        )
    }
}

/// How a quantity of one resource is written in messages and bodies.
#[derive(Clone, Copy)]
enum Unit {
    Count,
    Cpu,
    Memory,
}

impl Unit {
    fn format(self, v: u64) -> String {
        match self {
            Unit::Count => v.to_string(),
            Unit::Cpu => format_cpu(v),
            Unit::Memory => format_memory(v),
        }
    }
}

/// An aggregate check failure: `current + requested > limit`.
fn aggregate(
    resource: &'static str,
    label: &str,
    unit: Unit,
    limit: u64,
    current: u64,
    requested: u64,
) -> Exceeded {
    let (l, c, r) = (
        unit.format(limit),
        unit.format(current),
        unit.format(requested),
    );
    Exceeded {
        resource,
        message: format!("{label} quota exceeded: requested {r}, limit {l}, current usage {c}"),
        available: unit.format(limit.saturating_sub(current)),
        limit: l,
        current: c,
        requested: r,
    }
}

/// A per-session check failure: the one session asks more than any session may have. A new
/// session has no usage yet, so `current` is 0 and `available` the whole per-session limit.
fn per_session(
    resource: &'static str,
    label: &str,
    unit: Unit,
    limit: u64,
    requested: u64,
) -> Exceeded {
    let (l, r) = (unit.format(limit), unit.format(requested));
    Exceeded {
        resource,
        message: format!("{label} per-session limit exceeded: requested {r}, limit {l}"),
        available: l.clone(),
        limit: l,
        current: unit.format(0),
        requested: r,
    }
}

/// Seed 000's check order: per-session CPU, memory, GPU; session count; aggregate CPU, memory,
/// GPU. The first failure wins.
// `Exceeded` is the 402 body's five strings; it is built once per rejected admission and turned
// straight into an `ApiError`, so its size on the error path costs nothing worth a `Box`.
#[allow(clippy::result_large_err)]
pub fn check(limits: &Limits, usage: &Usage, req: &Requested) -> Result<(), Exceeded> {
    if req.cpu_millicores > limits.cpu_per_session {
        return Err(per_session(
            "cpu_per_session",
            "CPU",
            Unit::Cpu,
            limits.cpu_per_session,
            req.cpu_millicores,
        ));
    }
    if req.memory_bytes > limits.memory_per_session {
        return Err(per_session(
            "memory_per_session",
            "Memory",
            Unit::Memory,
            limits.memory_per_session,
            req.memory_bytes,
        ));
    }
    if req.gpu > limits.gpu_per_session {
        return Err(per_session(
            "gpu_per_session",
            "GPU",
            Unit::Count,
            limits.gpu_per_session,
            req.gpu,
        ));
    }
    if usage.sessions.saturating_add(1) > limits.sessions {
        return Err(Exceeded {
            resource: "sessions",
            message: format!(
                "Session limit reached: {}/{} sessions active",
                usage.sessions, limits.sessions
            ),
            limit: limits.sessions.to_string(),
            current: usage.sessions.to_string(),
            requested: "1".into(),
            available: limits.sessions.saturating_sub(usage.sessions).to_string(),
        });
    }
    if usage.cpu_millicores.saturating_add(req.cpu_millicores) > limits.cpu_millicores {
        return Err(aggregate(
            "cpu",
            "CPU",
            Unit::Cpu,
            limits.cpu_millicores,
            usage.cpu_millicores,
            req.cpu_millicores,
        ));
    }
    if usage.memory_bytes.saturating_add(req.memory_bytes) > limits.memory_bytes {
        return Err(aggregate(
            "memory",
            "Memory",
            Unit::Memory,
            limits.memory_bytes,
            usage.memory_bytes,
            req.memory_bytes,
        ));
    }
    if usage.gpu.saturating_add(req.gpu) > limits.gpu {
        return Err(aggregate(
            "gpu",
            "GPU",
            Unit::Count,
            limits.gpu,
            usage.gpu,
            req.gpu,
        ));
    }
    Ok(())
}

/// `"<n>m"`.
pub fn format_cpu(millicores: u64) -> String {
    format!("{millicores}m")
}

/// The largest exact binary suffix (`Ki|Mi|Gi|Ti`), else plain bytes: `1536Mi`, `1Gi`, `1000`.
pub fn format_memory(bytes: u64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    for (unit, suffix) in [(TI, "Ti"), (GI, "Gi"), (MI, "Mi"), (KI, "Ki")] {
        if bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// The `GET /quotas/me` body: the seed's nesting, `current`/`available` inside `limits`.
pub fn me_view(limits: &Limits, usage: &Usage) -> Value {
    json!({
        "limits": {
            "max_sessions": limits.sessions,
            "max_cpu": format_cpu(limits.cpu_millicores),
            "max_memory": format_memory(limits.memory_bytes),
            "max_gpu": limits.gpu,
            "max_storage": format_memory(limits.storage_bytes),
            "max_cpu_per_session": format_cpu(limits.cpu_per_session),
            "max_memory_per_session": format_memory(limits.memory_per_session),
            "max_gpu_per_session": limits.gpu_per_session,
            "current": {
                "sessions": usage.sessions,
                "cpu": format_cpu(usage.cpu_millicores),
                "memory": format_memory(usage.memory_bytes),
                "gpu": usage.gpu,
                "storage": "0",
            },
            "available": {
                "sessions": limits.sessions.saturating_sub(usage.sessions),
                "cpu": format_cpu(limits.cpu_millicores.saturating_sub(usage.cpu_millicores)),
                "memory": format_memory(limits.memory_bytes.saturating_sub(usage.memory_bytes)),
                "gpu": limits.gpu.saturating_sub(usage.gpu),
                "storage": format_memory(limits.storage_bytes),
            },
        }
    })
}

/// The keys set on one row, with API names and formatting (`{"max_cpu":"8000m"}`).
pub fn overrides_view(row: &LimitRow) -> Value {
    let mut out = Map::new();
    for key in KEYS {
        if let Some(v) = key.get(row) {
            let v = u64::try_from(v).unwrap_or(0);
            let value = match key.unit {
                Unit::Count => Value::from(v),
                unit => Value::from(unit.format(v)),
            };
            out.insert(key.name.into(), value);
        }
    }
    Value::Object(out)
}

/// A PUT body: `None` absent, `Some(None)` null (clear: inherit), `Some(Some(v))` set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitPatch {
    pub max_sessions: Option<Option<i64>>,
    pub max_cpu_millicores: Option<Option<i64>>,
    pub max_memory_bytes: Option<Option<i64>>,
    pub max_gpu: Option<Option<i64>>,
    pub max_storage_bytes: Option<Option<i64>>,
    pub max_cpu_per_session: Option<Option<i64>>,
    pub max_memory_per_session: Option<Option<i64>>,
    pub max_gpu_per_session: Option<Option<i64>>,
}

/// One API key of the limits: its name, how it is written, its largest accepted value, and
/// where it lives in a row and a patch.
struct Key {
    name: &'static str,
    unit: Unit,
    max: u64,
    get: fn(&LimitRow) -> Option<i64>,
    set: fn(&mut LimitPatch, Option<i64>),
}

impl Key {
    fn get(&self, row: &LimitRow) -> Option<i64> {
        (self.get)(row)
    }
}

const KEYS: [Key; 8] = [
    Key {
        name: "max_sessions",
        unit: Unit::Count,
        max: LIMIT_MAX_SESSIONS,
        get: |r| r.max_sessions,
        set: |p, v| p.max_sessions = Some(v),
    },
    Key {
        name: "max_cpu",
        unit: Unit::Cpu,
        max: LIMIT_MAX_CPU,
        get: |r| r.max_cpu_millicores,
        set: |p, v| p.max_cpu_millicores = Some(v),
    },
    Key {
        name: "max_memory",
        unit: Unit::Memory,
        max: LIMIT_MAX_MEMORY,
        get: |r| r.max_memory_bytes,
        set: |p, v| p.max_memory_bytes = Some(v),
    },
    Key {
        name: "max_gpu",
        unit: Unit::Count,
        max: LIMIT_MAX_GPU,
        get: |r| r.max_gpu,
        set: |p, v| p.max_gpu = Some(v),
    },
    Key {
        name: "max_storage",
        unit: Unit::Memory,
        max: LIMIT_MAX_STORAGE,
        get: |r| r.max_storage_bytes,
        set: |p, v| p.max_storage_bytes = Some(v),
    },
    Key {
        name: "max_cpu_per_session",
        unit: Unit::Cpu,
        max: LIMIT_MAX_CPU,
        get: |r| r.max_cpu_per_session,
        set: |p, v| p.max_cpu_per_session = Some(v),
    },
    Key {
        name: "max_memory_per_session",
        unit: Unit::Memory,
        max: LIMIT_MAX_MEMORY,
        get: |r| r.max_memory_per_session,
        set: |p, v| p.max_memory_per_session = Some(v),
    },
    Key {
        name: "max_gpu_per_session",
        unit: Unit::Count,
        max: LIMIT_MAX_GPU_PER_SESSION,
        get: |r| r.max_gpu_per_session,
        set: |p, v| p.max_gpu_per_session = Some(v),
    },
];

/// Parses one present, non-null value of `key` and checks its range.
fn parse_value(key: &Key, value: &Value) -> Result<i64, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_field", message);
    let name = key.name;
    let v = match key.unit {
        Unit::Count => {
            let Some(n) = value.as_i64() else {
                return Err(invalid(format!(
                    "{name} must be an integer from 0 to {}",
                    key.max
                )));
            };
            match u64::try_from(n) {
                Ok(n) => n,
                Err(_) => {
                    return Err(invalid(format!(
                        "{name} must be an integer from 0 to {}",
                        key.max
                    )))
                }
            }
        }
        Unit::Cpu => {
            let Some(s) = value.as_str() else {
                return Err(invalid(format!(
                    "{name} must be a CPU quantity string such as \"4000m\" or \"4\""
                )));
            };
            CpuQuantity::parse(s)
                .map_err(|e| invalid(format!("{name}: {e}")))?
                .millicores()
        }
        Unit::Memory => {
            let Some(s) = value.as_str() else {
                return Err(invalid(format!(
                    "{name} must be a memory quantity string such as \"8Gi\""
                )));
            };
            MemoryQuantity::parse(s)
                .map_err(|e| invalid(format!("{name}: {e}")))?
                .bytes()
        }
    };
    if v > key.max {
        let message = match key.unit {
            Unit::Count => format!("{name} must be an integer from 0 to {}", key.max),
            unit => format!("{name} must be at most {}", unit.format(key.max)),
        };
        return Err(invalid(message));
    }
    i64::try_from(v).map_err(|_| invalid(format!("{name} is too large")))
}

/// Parses a `PUT /quotas/users/{id}` (`allow_null`) or `PUT /quotas/defaults` body: any subset
/// of the limit keys; unknown keys, wrong types, out-of-range values and (without `allow_null`)
/// nulls are 400 `invalid_field`.
pub fn parse_patch(body: &Value, allow_null: bool) -> Result<LimitPatch, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_field", message);
    let Some(object) = body.as_object() else {
        return Err(invalid(
            "the body must be a JSON object of limit keys (max_sessions, max_cpu, max_memory, \
             max_gpu, max_storage, max_cpu_per_session, max_memory_per_session, \
             max_gpu_per_session)"
                .into(),
        ));
    };
    let mut patch = LimitPatch::default();
    for (name, value) in object {
        let Some(key) = KEYS.iter().find(|k| k.name == name.as_str()) else {
            let shown: String = name.chars().take(64).collect();
            return Err(invalid(format!(
                "unknown field `{}`; expected one of max_sessions, max_cpu, max_memory, \
                 max_gpu, max_storage, max_cpu_per_session, max_memory_per_session, \
                 max_gpu_per_session",
                shown.escape_default()
            )));
        };
        let parsed = if value.is_null() {
            if !allow_null {
                return Err(invalid(format!(
                    "{} must not be null here (org defaults cannot inherit)",
                    key.name
                )));
            }
            None
        } else {
            Some(parse_value(key, value)?)
        };
        (key.set)(&mut patch, parsed);
    }
    Ok(patch)
}

/// Per-session limits must not exceed the totals (400 `invalid_field`).
pub fn check_consistent(limits: &Limits) -> Result<(), ApiError> {
    let pairs = [
        (
            "max_cpu_per_session",
            "max_cpu",
            Unit::Cpu,
            limits.cpu_per_session,
            limits.cpu_millicores,
        ),
        (
            "max_memory_per_session",
            "max_memory",
            Unit::Memory,
            limits.memory_per_session,
            limits.memory_bytes,
        ),
        (
            "max_gpu_per_session",
            "max_gpu",
            Unit::Count,
            limits.gpu_per_session,
            limits.gpu,
        ),
    ];
    for (per, total, unit, per_value, total_value) in pairs {
        if per_value > total_value {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!(
                    "{per} ({}) must not exceed {total} ({}) in the effective limits",
                    unit.format(per_value),
                    unit.format(total_value)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(err: &ApiError) -> Value {
        serde_json::from_slice(&err.envelope("rid")).unwrap()
    }

    fn req(cpu: &str, memory: &str, gpu: i64) -> Requested {
        validate_request(cpu, memory, gpu).unwrap()
    }

    fn limits() -> Limits {
        Limits {
            sessions: 10,
            cpu_millicores: 8000,
            memory_bytes: 8 * GI,
            gpu: 1,
            storage_bytes: 100 * GI,
            cpu_per_session: 4000,
            memory_per_session: 4 * GI,
            gpu_per_session: 2,
        }
    }

    fn bad_request_message(err: ApiError) -> String {
        assert_eq!(err.status.as_u16(), 400);
        assert_eq!(err.code, "invalid_field");
        err.message
    }

    #[test]
    fn memory_uses_the_largest_exact_binary_suffix() {
        assert_eq!(format_memory(1536 * MI), "1536Mi");
        assert_eq!(format_memory(1_073_741_824), "1Gi");
        assert_eq!(format_memory(1000), "1000");
        assert_eq!(format_memory(0), "0");
        assert_eq!(format_memory(1024), "1Ki");
        assert_eq!(format_memory(1025), "1025");
        assert_eq!(format_memory(3 * TI), "3Ti");
        assert_eq!(format_memory(1024 * TI), "1024Ti");
        assert_eq!(format_memory(u64::MAX), u64::MAX.to_string());
        assert_eq!(format_cpu(0), "0m");
        assert_eq!(format_cpu(4000), "4000m");
    }

    #[test]
    fn request_validation_bounds_and_messages() {
        assert_eq!(
            req("1", "2Gi", 0),
            Requested {
                cpu_millicores: 1000,
                memory_bytes: 2 * GI,
                gpu: 0
            }
        );
        // Edges are inclusive.
        assert!(validate_request("100m", "128Mi", 0).is_ok());
        assert!(validate_request("64000m", "512Gi", 8).is_ok());
        let msg =
            |c: &str, m: &str, g: i64| bad_request_message(validate_request(c, m, g).unwrap_err());
        assert_eq!(msg("99m", "1Gi", 0), "CPU request too low: minimum 100m");
        assert_eq!(
            msg("64001m", "1Gi", 0),
            "CPU request too high: maximum 64000m"
        );
        assert_eq!(
            msg("1", "127Mi", 0),
            "memory request too low: minimum 128Mi"
        );
        assert_eq!(
            msg("1", "513Gi", 0),
            "memory request too high: maximum 512Gi"
        );
        assert!(msg("1", "1Gi", 9).contains("resources.gpu"));
        assert!(msg("1", "1Gi", -1).contains("resources.gpu"));
        assert!(msg("abc", "1Gi", 0).starts_with("resources.cpu: invalid CPU quantity"));
        assert!(msg("1", "1Gm", 0).starts_with("resources.memory: invalid memory quantity"));
        assert!(msg("1", "1m", 0).starts_with("resources.memory:"));
        assert!(msg("", "1Gi", 0).starts_with("resources.cpu:"));
    }

    #[test]
    fn cpu_quota_402_has_the_seed_body_plus_resource_and_request_id() {
        let usage = Usage {
            sessions: 2,
            cpu_millicores: 5000,
            memory_bytes: GI,
            gpu: 0,
        };
        let e = check(&limits(), &usage, &req("4000m", "1Gi", 0)).unwrap_err();
        let err = e.to_api_error();
        assert_eq!(err.status.as_u16(), 402);
        assert_eq!(
            body(&err),
            json!({
                "error": "quota_exceeded",
                "message": "CPU quota exceeded: requested 4000m, limit 8000m, current usage 5000m",
                "request_id": "rid",
                "quota": {
                    "limit": "8000m",
                    "current": "5000m",
                    "requested": "4000m",
                    "available": "3000m",
                    "resource": "cpu"
                }
            })
        );
    }

    #[test]
    fn memory_quota_402() {
        let usage = Usage {
            sessions: 1,
            cpu_millicores: 0,
            memory_bytes: 6 * GI,
            gpu: 0,
        };
        let e = check(&limits(), &usage, &req("1", "4Gi", 0)).unwrap_err();
        assert_eq!(
            body(&e.to_api_error()),
            json!({
                "error": "quota_exceeded",
                "message": "Memory quota exceeded: requested 4Gi, limit 8Gi, current usage 6Gi",
                "request_id": "rid",
                "quota": {"limit": "8Gi", "current": "6Gi", "requested": "4Gi",
                          "available": "2Gi", "resource": "memory"}
            })
        );
    }

    #[test]
    fn session_count_402() {
        let usage = Usage {
            sessions: 10,
            ..Usage::default()
        };
        let e = check(&limits(), &usage, &req("1", "1Gi", 0)).unwrap_err();
        assert_eq!(
            body(&e.to_api_error()),
            json!({
                "error": "quota_exceeded",
                "message": "Session limit reached: 10/10 sessions active",
                "request_id": "rid",
                "quota": {"limit": "10", "current": "10", "requested": "1",
                          "available": "0", "resource": "sessions"}
            })
        );
        // One below the limit is admitted.
        let usage = Usage {
            sessions: 9,
            ..Usage::default()
        };
        assert_eq!(check(&limits(), &usage, &req("1", "1Gi", 0)), Ok(()));
    }

    #[test]
    fn gpu_quota_402() {
        let e = check(&limits(), &Usage::default(), &req("1", "1Gi", 2)).unwrap_err();
        assert_eq!(
            body(&e.to_api_error()),
            json!({
                "error": "quota_exceeded",
                "message": "GPU quota exceeded: requested 2, limit 1, current usage 0",
                "request_id": "rid",
                "quota": {"limit": "1", "current": "0", "requested": "2",
                          "available": "1", "resource": "gpu"}
            })
        );
    }

    #[test]
    fn per_session_402s() {
        let l = Limits {
            cpu_per_session: 2000,
            ..limits()
        };
        let e = check(&l, &Usage::default(), &req("4000m", "1Gi", 0)).unwrap_err();
        assert_eq!(
            body(&e.to_api_error()),
            json!({
                "error": "quota_exceeded",
                "message": "CPU per-session limit exceeded: requested 4000m, limit 2000m",
                "request_id": "rid",
                "quota": {"limit": "2000m", "current": "0m", "requested": "4000m",
                          "available": "2000m", "resource": "cpu_per_session"}
            })
        );
        let e = check(&limits(), &Usage::default(), &req("1", "6Gi", 0)).unwrap_err();
        assert_eq!(
            body(&e.to_api_error()),
            json!({
                "error": "quota_exceeded",
                "message": "Memory per-session limit exceeded: requested 6Gi, limit 4Gi",
                "request_id": "rid",
                "quota": {"limit": "4Gi", "current": "0", "requested": "6Gi",
                          "available": "4Gi", "resource": "memory_per_session"}
            })
        );
        let e = check(&limits(), &Usage::default(), &req("1", "1Gi", 3)).unwrap_err();
        assert_eq!(
            body(&e.to_api_error()),
            json!({
                "error": "quota_exceeded",
                "message": "GPU per-session limit exceeded: requested 3, limit 2",
                "request_id": "rid",
                "quota": {"limit": "2", "current": "0", "requested": "3",
                          "available": "2", "resource": "gpu_per_session"}
            })
        );
    }

    #[test]
    fn a_request_failing_several_checks_reports_the_first_in_seed_order() {
        // Fails everything: per-session cpu/memory/gpu, count, aggregate cpu/memory/gpu.
        let l = Limits {
            sessions: 1,
            cpu_millicores: 1000,
            memory_bytes: GI,
            gpu: 0,
            storage_bytes: 0,
            cpu_per_session: 500,
            memory_per_session: 512 * MI,
            gpu_per_session: 0,
        };
        let usage = Usage {
            sessions: 1,
            cpu_millicores: 1000,
            memory_bytes: GI,
            gpu: 0,
        };
        let r = req("2", "2Gi", 1);
        let order = [
            "cpu_per_session",
            "memory_per_session",
            "gpu_per_session",
            "sessions",
            "cpu",
            "memory",
            "gpu",
        ];
        // Lift each failing check in turn; the next one in order must be reported.
        let mut l = l;
        for (i, expected) in order.iter().enumerate() {
            assert_eq!(
                check(&l, &usage, &r).unwrap_err().resource,
                *expected,
                "step {i}"
            );
            match *expected {
                "cpu_per_session" => l.cpu_per_session = 64_000,
                "memory_per_session" => l.memory_per_session = 512 * GI,
                "gpu_per_session" => l.gpu_per_session = 8,
                "sessions" => l.sessions = 2,
                "cpu" => l.cpu_millicores = 3000,
                "memory" => l.memory_bytes = 3 * GI,
                _ => l.gpu = 1,
            }
        }
        assert_eq!(check(&l, &usage, &r), Ok(()));
    }

    #[test]
    fn aggregate_checks_admit_exactly_up_to_the_limit() {
        let usage = Usage {
            sessions: 1,
            cpu_millicores: 4000,
            memory_bytes: 4 * GI,
            gpu: 0,
        };
        assert_eq!(check(&limits(), &usage, &req("4", "4Gi", 1)), Ok(()));
        let e = check(&limits(), &usage, &req("4001m", "4Gi", 1));
        assert_eq!(e.unwrap_err().resource, "cpu_per_session");
        // Usage already above the limit (limit lowered later): available is 0, not negative.
        let usage = Usage {
            cpu_millicores: 9000,
            ..usage
        };
        let e = check(&limits(), &usage, &req("1", "1Gi", 0)).unwrap_err();
        assert_eq!((e.resource, e.available.as_str()), ("cpu", "0m"));
    }

    #[test]
    fn effective_limits_inherit_user_then_org_then_built_in() {
        assert_eq!(
            Limits::effective(&LimitRow::default(), &LimitRow::default()),
            Limits::BUILT_IN
        );
        assert_eq!(
            Limits::BUILT_IN,
            Limits {
                sessions: 5,
                cpu_millicores: 4000,
                memory_bytes: 8 * GI,
                gpu: 0,
                storage_bytes: 50 * GI,
                cpu_per_session: 2000,
                memory_per_session: 4 * GI,
                gpu_per_session: 0,
            }
        );
        let org = LimitRow {
            max_sessions: Some(20),
            max_cpu_millicores: Some(16_000),
            max_gpu: Some(2),
            ..LimitRow::default()
        };
        let user = LimitRow {
            max_sessions: Some(3),
            max_memory_bytes: Some(-5),
            ..LimitRow::default()
        };
        let l = Limits::effective(&user, &org);
        assert_eq!(l.sessions, 3, "user row wins");
        assert_eq!(l.cpu_millicores, 16_000, "org row next");
        assert_eq!(l.gpu, 2);
        assert_eq!(l.memory_bytes, 0, "negative stored value is 0");
        assert_eq!(l.storage_bytes, 50 * GI, "built-in last");
        assert_eq!(l.cpu_per_session, 2000);
        // A user's 0 is a value, not "inherit".
        let user = LimitRow {
            max_gpu: Some(0),
            ..LimitRow::default()
        };
        assert_eq!(Limits::effective(&user, &org).gpu, 0);
    }

    #[test]
    fn me_view_has_the_seed_nesting() {
        let usage = Usage {
            sessions: 3,
            cpu_millicores: 6000,
            memory_bytes: 12 * GI,
            gpu: 1,
        };
        let l = Limits {
            sessions: 10,
            cpu_millicores: 16_000,
            memory_bytes: 64 * GI,
            gpu: 2,
            storage_bytes: 100 * GI,
            cpu_per_session: 8000,
            memory_per_session: 32 * GI,
            gpu_per_session: 1,
        };
        assert_eq!(
            me_view(&l, &usage),
            json!({"limits": {
                "max_sessions": 10, "max_cpu": "16000m", "max_memory": "64Gi", "max_gpu": 2,
                "max_storage": "100Gi", "max_cpu_per_session": "8000m",
                "max_memory_per_session": "32Gi", "max_gpu_per_session": 1,
                "current": {"sessions": 3, "cpu": "6000m", "memory": "12Gi", "gpu": 1,
                            "storage": "0"},
                "available": {"sessions": 7, "cpu": "10000m", "memory": "52Gi", "gpu": 1,
                              "storage": "100Gi"}
            }})
        );
        // Over the limit: available floors at 0.
        let over = Usage {
            sessions: 12,
            cpu_millicores: 20_000,
            memory_bytes: 65 * GI,
            gpu: 3,
        };
        let v = me_view(&l, &over);
        assert_eq!(
            v["limits"]["available"],
            json!({"sessions": 0, "cpu": "0m", "memory": "0", "gpu": 0, "storage": "100Gi"})
        );
    }

    #[test]
    fn overrides_view_shows_only_set_keys() {
        assert_eq!(overrides_view(&LimitRow::default()), json!({}));
        let row = LimitRow {
            max_sessions: Some(0),
            max_cpu_millicores: Some(8000),
            max_memory_bytes: Some(1536 * MI as i64),
            max_storage_bytes: Some(1000),
            max_gpu_per_session: Some(1),
            ..LimitRow::default()
        };
        assert_eq!(
            overrides_view(&row),
            json!({"max_sessions": 0, "max_cpu": "8000m", "max_memory": "1536Mi",
                   "max_storage": "1000", "max_gpu_per_session": 1})
        );
    }

    #[test]
    fn patch_distinguishes_absent_null_and_value() {
        let p = parse_patch(
            &json!({"max_sessions": 7, "max_cpu": "2", "max_memory": null, "max_storage": "1Ti",
                    "max_memory_per_session": "1536Mi", "max_gpu_per_session": 0}),
            true,
        )
        .unwrap();
        assert_eq!(
            p,
            LimitPatch {
                max_sessions: Some(Some(7)),
                max_cpu_millicores: Some(Some(2000)),
                max_memory_bytes: Some(None),
                max_gpu: None,
                max_storage_bytes: Some(Some(TI as i64)),
                max_cpu_per_session: None,
                max_memory_per_session: Some(Some(1536 * MI as i64)),
                max_gpu_per_session: Some(Some(0)),
            }
        );
        let row = LimitRow {
            max_memory_bytes: Some(5),
            max_gpu: Some(1),
            ..LimitRow::default()
        };
        let applied = row.apply(&p);
        assert_eq!(applied.max_memory_bytes, None, "null clears");
        assert_eq!(applied.max_gpu, Some(1), "absent keeps");
        assert_eq!(applied.max_sessions, Some(7), "value sets");
        assert!(!applied.is_empty());
        let cleared = applied.apply(
            &parse_patch(
                &json!({"max_sessions": null, "max_cpu": null, "max_gpu": null, "max_storage": null,
                    "max_memory_per_session": null, "max_gpu_per_session": null}),
                true,
            )
            .unwrap(),
        );
        assert!(cleared.is_empty());
        assert_eq!(
            parse_patch(&json!({}), false).unwrap(),
            LimitPatch::default()
        );
    }

    #[test]
    fn patch_rejects_unknown_keys_wrong_types_and_nulls_for_defaults() {
        let msg = |v: Value, allow_null: bool| {
            bad_request_message(parse_patch(&v, allow_null).unwrap_err())
        };
        assert!(msg(json!({"max_cpus": "1"}), true).contains("unknown field `max_cpus`"));
        assert!(msg(json!({"max_total_cpu": 1}), true).contains("max_total_cpu"));
        assert!(msg(json!([1]), true).contains("JSON object"));
        assert!(msg(json!(null), true).contains("JSON object"));
        assert!(msg(json!({"max_cpu": null}), false).contains("max_cpu must not be null"));
        assert!(
            msg(json!({"max_cpu": 4000}), true).contains("max_cpu must be a CPU quantity string")
        );
        assert!(msg(json!({"max_memory": 1024}), true).contains("max_memory must be a memory"));
        assert!(msg(json!({"max_sessions": "5"}), true).contains("max_sessions must be an integer"));
        assert!(msg(json!({"max_sessions": 1.5}), true).contains("max_sessions must be an integer"));
        assert!(msg(json!({"max_cpu": "lots"}), true).starts_with("max_cpu: invalid CPU quantity"));
        assert!(msg(json!({"max_storage": "1m"}), true).starts_with("max_storage: invalid memory"));
    }

    #[test]
    fn patch_range_limits() {
        let ok = |v: Value| parse_patch(&v, true).is_ok();
        let msg = |v: Value| bad_request_message(parse_patch(&v, true).unwrap_err());
        assert!(ok(json!({"max_sessions": 0})));
        assert!(ok(json!({"max_sessions": 10_000})));
        assert_eq!(
            msg(json!({"max_sessions": 10_001})),
            "max_sessions must be an integer from 0 to 10000"
        );
        assert_eq!(
            msg(json!({"max_sessions": -1})),
            "max_sessions must be an integer from 0 to 10000"
        );
        assert!(ok(json!({"max_cpu": "1000"})));
        assert!(ok(json!({"max_cpu": "1000000m"})));
        assert_eq!(
            msg(json!({"max_cpu": "1000001m"})),
            "max_cpu must be at most 1000000m"
        );
        assert_eq!(
            msg(json!({"max_cpu_per_session": "1001"})),
            "max_cpu_per_session must be at most 1000000m"
        );
        assert!(ok(json!({"max_memory": "10000000Mi"})));
        assert_eq!(
            msg(json!({"max_memory": "10000001Mi"})),
            "max_memory must be at most 10000000Mi"
        );
        assert!(ok(json!({"max_gpu": 64})));
        assert_eq!(
            msg(json!({"max_gpu": 65})),
            "max_gpu must be an integer from 0 to 64"
        );
        assert!(ok(json!({"max_storage": "100Ti"})));
        assert_eq!(
            msg(json!({"max_storage": "101Ti"})),
            "max_storage must be at most 100Ti"
        );
        assert!(ok(json!({"max_gpu_per_session": 8})));
        assert_eq!(
            msg(json!({"max_gpu_per_session": 9})),
            "max_gpu_per_session must be an integer from 0 to 8"
        );
        assert!(msg(json!({"max_gpu": u64::MAX})).contains("max_gpu must be an integer"));
    }

    #[test]
    fn per_session_limits_must_not_exceed_totals() {
        assert!(check_consistent(&Limits::BUILT_IN).is_ok());
        let equal = Limits {
            cpu_per_session: 4000,
            memory_per_session: 8 * GI,
            ..Limits::BUILT_IN
        };
        assert!(check_consistent(&equal).is_ok());
        let cpu = Limits {
            cpu_per_session: 4001,
            ..Limits::BUILT_IN
        };
        assert_eq!(
            bad_request_message(check_consistent(&cpu).unwrap_err()),
            "max_cpu_per_session (4001m) must not exceed max_cpu (4000m) in the effective limits"
        );
        let memory = Limits {
            memory_per_session: 9 * GI,
            ..Limits::BUILT_IN
        };
        assert!(bad_request_message(check_consistent(&memory).unwrap_err())
            .starts_with("max_memory_per_session (9Gi) must not exceed max_memory (8Gi)"));
        let gpu = Limits {
            gpu_per_session: 1,
            ..Limits::BUILT_IN
        };
        assert!(bad_request_message(check_consistent(&gpu).unwrap_err())
            .starts_with("max_gpu_per_session (1) must not exceed max_gpu (0)"));
    }

    #[test]
    fn limit_row_decodes_a_quota_limits_row() {
        use crate::store::{Rows, Value as Sql};
        let columns: Vec<String> = LimitRow::COLUMNS
            .split(',')
            .map(|c| c.trim().to_owned())
            .collect();
        assert_eq!(columns.len(), 8);
        let rows = Rows {
            columns,
            rows: vec![vec![
                Sql::Integer(3),
                Sql::Null,
                Sql::Integer(GI as i64),
                Sql::Null,
                Sql::Null,
                Sql::Integer(500),
                Sql::Null,
                Sql::Integer(1),
            ]],
        };
        let row = LimitRow::from_row(&rows.first().unwrap()).unwrap();
        assert_eq!(
            row,
            LimitRow {
                max_sessions: Some(3),
                max_memory_bytes: Some(GI as i64),
                max_cpu_per_session: Some(500),
                max_gpu_per_session: Some(1),
                ..LimitRow::default()
            }
        );
    }
}
