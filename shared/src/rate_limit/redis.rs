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

pub struct RedisBackend<'a> {
    pub url: &'a str,
}

/// The `EVAL` arguments for `limits` at `now_us`.
pub fn eval_args(limits: &[Limit], now_us: i64) -> Vec<Arg> {
    let mut args = vec![Arg::Text(SCRIPT.to_owned()), Arg::Int(limits.len() as i64)];
    args.extend(limits.iter().map(|l| Arg::Text(format!("ss:rl:{}", l.key))));
    args.push(Arg::Int(now_us));
    for l in limits {
        args.push(Arg::Int(l.interval_us()));
        args.push(Arg::Int(l.window_us()));
    }
    args
}

/// An `EVAL` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(String),
    Int(i64),
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
        use spin_sdk::redis::{Connection, RedisParameter, RedisResult};
        let err = |e: String| StoreError::new(StoreKind::KeyValue, format!("redis: {e}"));
        let now_us = now_ms.saturating_mul(1000);
        let conn = Connection::open(self.url).map_err(|e| err(format!("{e:?}")))?;
        let params: Vec<RedisParameter> = eval_args(limits, now_us)
            .into_iter()
            .map(|a| match a {
                Arg::Text(t) => RedisParameter::Binary(t.into_bytes()),
                Arg::Int(i) => RedisParameter::Int64(i),
            })
            .collect();
        let reply = conn
            .execute("EVAL", &params)
            .map_err(|e| err(format!("{e:?}")))?;
        let numbers: Vec<i64> = reply
            .iter()
            .map(|r| match r {
                RedisResult::Int64(i) => Some(*i),
                RedisResult::Binary(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                RedisResult::Status(s) => s.parse().ok(),
                RedisResult::Nil => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(|| err("non-numeric script reply".to_owned()))?;
        decisions(limits, now_us, &numbers)
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
        let args = eval_args(&limits, 5);
        assert_eq!(args[1], Arg::Int(2));
        assert_eq!(args[2], Arg::Text("ss:rl:a".into()));
        assert_eq!(args[4], Arg::Int(5));
        assert_eq!(
            &args[5..],
            &[
                Arg::Int(6_000_000),
                Arg::Int(60_000_000),
                Arg::Int(1_000_000),
                Arg::Int(60_000_000)
            ]
        );
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
