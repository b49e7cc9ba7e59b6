//! The Redis backend of the limiter (`rate_limit_backend = "redis"`, `redis_url`), through Spin's
//! outbound Redis. The same GCRA as the SQLite backend runs as one Lua script, which Redis
//! executes atomically, so several limits are still checked all-or-nothing and a refusal charges
//! nothing. Keys expire one window after their last use, so Redis holds only live counters.
//!
//! Choose it when many Spin instances share one database and the rate-limit upsert would become
//! the busiest write (SQLite and libSQL serialise writers): Redis takes the counter traffic off
//! the database. The manifest must allow the Redis host (`allowed_outbound_hosts`, e.g.
//! `redis://redis:6379`) for every component.

use super::{Backend, Decision, Limit};
use crate::store::redis::RedisStore;
use crate::store::{StoreError, StoreKind};

/// KEYS: one per limit. ARGV: now (µs), then per limit its interval and window (µs).
/// Returns `{1, tat1, tat2, …}` when every limit admits (all charged), else `{0, i, tat_i}` for
/// the first refusing limit (nothing charged).
pub const SCRIPT: &str = r#"
local now = tonumber(ARGV[1])
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  if tat + interval - now > window then
    return {0, i, tat}
  end
  tats[i] = tat + interval
end
local out = {1}
for i = 1, #KEYS do
  local window_ms = math.ceil(tonumber(ARGV[2 * i + 1]) / 1000)
  redis.call('SET', KEYS[i], tats[i], 'PX', window_ms + 1000)
  out[#out + 1] = tats[i]
end
return out
"#;

/// The limiter on a Redis connection (the [`RedisStore`] trait: Spin's outbound Redis in a
/// component, plain TCP in native tests).
pub struct RedisBackend<'a> {
    pub conn: &'a dyn RedisStore,
}

/// The `EVAL` keys for `limits`.
pub fn eval_keys(limits: &[Limit]) -> Vec<String> {
    limits.iter().map(|l| format!("ss:rl:{}", l.key)).collect()
}

/// The `EVAL` arguments for `limits` at `now_us`: now, then per limit its interval and window.
pub fn eval_argv(limits: &[Limit], now_us: i64) -> Vec<i64> {
    let mut args = vec![now_us];
    for l in limits {
        args.push(l.interval_us());
        args.push(l.window_us());
    }
    args
}

/// Turns the script's reply into decisions.
pub fn decisions(
    limits: &[Limit],
    now_us: i64,
    reply: &[i64],
) -> Result<Vec<Decision>, StoreError> {
    let bad = || StoreError::new(StoreKind::KeyValue, "unexpected rate-limit script reply");
    match reply.first() {
        Some(1) if reply.len() == limits.len() + 1 => Ok(limits
            .iter()
            .zip(&reply[1..])
            .map(|(l, tat)| Decision::admitted(l, now_us, *tat))
            .collect()),
        Some(0) if reply.len() == 3 => {
            let index = usize::try_from(reply[1] - 1).map_err(|_| bad())?;
            let limit = limits.get(index).ok_or_else(bad)?;
            Ok(vec![Decision::refused(limit, now_us, reply[2])])
        }
        _ => Err(bad()),
    }
}

impl Backend for RedisBackend<'_> {
    fn check(&self, limits: &[Limit], now_ms: i64) -> Result<Vec<Decision>, StoreError> {
        let now_us = now_ms.saturating_mul(1000);
        let reply = self
            .conn
            .eval(SCRIPT, &eval_keys(limits), &eval_argv(limits, now_us))?;
        decisions(limits, now_us, &reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(key: &str, max: i64) -> Limit {
        Limit {
            name: "t",
            key: key.to_owned(),
            max,
            window_ms: 60_000,
        }
    }

    #[test]
    fn arguments_follow_the_script_contract() {
        let limits = [limit("a", 10), limit("b", 60)];
        assert_eq!(eval_keys(&limits), vec!["ss:rl:a", "ss:rl:b"]);
        assert_eq!(
            eval_argv(&limits, 5),
            vec![5, 6_000_000, 60_000_000, 1_000_000, 60_000_000]
        );
    }

    /// The same GCRA as the SQLite backend, on a real `redis-server` through the native
    /// [`crate::store::redis::TcpRedis`] (skipped when none is installed).
    #[cfg(feature = "native")]
    #[test]
    fn the_script_admits_exactly_max_on_a_real_redis() {
        use crate::store::redis::{RedisOpener, TcpRedis};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let Ok(mut server) = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
        else {
            eprintln!("skipped: no redis-server on PATH");
            return;
        };
        let url = format!("redis://127.0.0.1:{port}");
        let conn = (0..100)
            .find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                TcpRedis.open(&url).ok()
            })
            .expect("redis-server starts");
        let backend = RedisBackend {
            conn: conn.as_ref(),
        };
        let narrow = limit("narrow", 3);
        let wide = limit("wide", 100);
        let both = [wide.clone(), narrow];
        let admitted = (0..10)
            .filter(|_| {
                backend
                    .check(&both, 1_000)
                    .unwrap()
                    .iter()
                    .all(|d| d.allowed)
            })
            .count();
        assert_eq!(admitted, 3);
        // Refusals by `narrow` charged nothing to `wide`.
        let probe = backend.check(std::slice::from_ref(&wide), 1_000).unwrap();
        assert_eq!(probe[0].remaining, 100 - 4);
        let _ = server.kill();
        let _ = server.wait();
    }

    #[test]
    fn replies_become_decisions() {
        let limits = [limit("a", 10), limit("b", 60)];
        let ok = decisions(&limits, 0, &[1, 6_000_000, 1_000_000]).unwrap();
        assert!(ok.iter().all(|d| d.allowed));
        assert_eq!(ok[0].remaining, 9);
        let refused = decisions(&limits, 0, &[0, 2, 60_000_000]).unwrap();
        assert!(!refused[0].allowed);
        assert_eq!(refused[0].retry_after_seconds, 1);
        assert!(decisions(&limits, 0, &[0, 3, 1]).is_err());
        assert!(decisions(&limits, 0, &[7]).is_err());
    }
}
