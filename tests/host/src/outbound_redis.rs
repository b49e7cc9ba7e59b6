//! `fermyon:spin/redis@2.0.0`, mirroring Spin's `factor-outbound-redis`
//! (`host.rs`):
//!
//! * `connection.open(address)` is allowed only when `address` matches the
//!   component's `allowed_outbound_hosts` (e.g. `redis://127.0.0.1:6379`,
//!   templates resolved at start); otherwise `invalid-address`. An address the
//!   `redis` crate cannot parse is also `invalid-address`; a failure to
//!   connect is `other(msg)`;
//! * each op runs on a multiplexed async connection; errors map to
//!   `other(msg)`, except a type mismatch in `sadd` (`type-error`);
//! * `execute` results are flattened like Spin's `RedisResults`: nil → `nil`,
//!   integer → `int64`, bulk string → `binary`, simple string → `status`
//!   (`OK` too), arrays and sets are flattened recursively, doubles and big
//!   numbers → `binary` (decimal text), booleans → `int64` (0/1); maps,
//!   attributes, verbatim strings and pushes are an error.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Value};
use wasmtime::component::Resource;

use crate::bindings::fermyon::spin::redis::{
    Error, Host, HostConnection, Payload, RedisParameter, RedisResult,
};
use crate::server::HostState;

/// How long `open` waits for the TCP connection and handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The resource behind a guest `connection` handle.
pub struct Connection {
    conn: MultiplexedConnection,
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

/// Opens a connection to `address` (no allow-list check: see
/// [`HostConnection::open`]).
pub(crate) async fn connect(address: &str) -> Result<MultiplexedConnection, Error> {
    let client = redis::Client::open(address).map_err(|_| Error::InvalidAddress)?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(other(e)),
        Err(_) => Err(Error::Other(format!(
            "timed out connecting to Redis after {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Runs an arbitrary command and flattens its reply like Spin does.
pub(crate) async fn execute(
    conn: &mut MultiplexedConnection,
    command: &str,
    arguments: Vec<RedisParameter>,
) -> Result<Vec<RedisResult>, Error> {
    let mut cmd = redis::cmd(command);
    for arg in arguments {
        match arg {
            RedisParameter::Int64(v) => cmd.arg(v),
            RedisParameter::Binary(v) => cmd.arg(v),
        };
    }
    let value: Value = cmd.query_async(conn).await.map_err(other)?;
    let mut out = Vec::new();
    flatten(&mut out, value)?;
    Ok(out)
}

fn flatten(out: &mut Vec<RedisResult>, value: Value) -> Result<(), Error> {
    let unsupported = |what: &str| {
        Err(Error::Other(format!(
            "Could not convert Redis response: Redis {what} is not supported"
        )))
    };
    match value {
        Value::Nil => out.push(RedisResult::Nil),
        Value::Int(v) => out.push(RedisResult::Int64(v)),
        Value::BulkString(b) => out.push(RedisResult::Binary(b)),
        Value::SimpleString(s) => out.push(RedisResult::Status(s)),
        Value::Okay => out.push(RedisResult::Status("OK".to_string())),
        Value::Array(items) | Value::Set(items) => {
            for item in items {
                flatten(out, item)?;
            }
        }
        Value::Double(v) => out.push(RedisResult::Binary(v.to_string().into_bytes())),
        Value::Boolean(v) => out.push(RedisResult::Int64(i64::from(v))),
        Value::BigNumber(v) => out.push(RedisResult::Binary(v)),
        Value::Map(_) => return unsupported("Map type"),
        Value::Attribute { .. } => return unsupported("Attribute type"),
        Value::VerbatimString { .. } => return unsupported("string with format attribute"),
        Value::Push { .. } => return unsupported("Pub/Sub type"),
        Value::ServerError(e) => return Err(Error::Other(format!("Server error: {e:?}"))),
        other_value => {
            return Err(Error::Other(format!(
                "Could not convert Redis response: {other_value:?}"
            )))
        }
    }
    Ok(())
}

impl HostState {
    fn redis_conn(&self, conn: &Resource<Connection>) -> wasmtime::Result<MultiplexedConnection> {
        Ok(self.table.get(conn)?.conn.clone())
    }
}

impl Host for HostState {}

impl HostConnection for HostState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, Error>> {
        if !self.component.allowed_hosts.allows_address(&address) {
            eprintln!(
                "A component ({}) tried to connect to a non-allowed Redis address: {address}",
                self.component.id
            );
            return Ok(Err(Error::InvalidAddress));
        }
        match connect(&address).await {
            Ok(conn) => Ok(Ok(self.table.push(Connection { conn })?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn publish(
        &mut self,
        conn: Resource<Connection>,
        channel: String,
        payload: Payload,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut c = self.redis_conn(&conn)?;
        Ok(c.publish::<_, _, ()>(&channel, &payload)
            .await
            .map_err(other))
    }

    async fn get(
        &mut self,
        conn: Resource<Connection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Payload>, Error>> {
        let mut c = self.redis_conn(&conn)?;
        Ok(c.get::<_, Option<Vec<u8>>>(&key).await.map_err(other))
    }

    async fn set(
        &mut self,
        conn: Resource<Connection>,
        key: String,
        value: Payload,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut c = self.redis_conn(&conn)?;
        Ok(c.set::<_, _, ()>(&key, &value).await.map_err(other))
    }

    async fn incr(
        &mut self,
        conn: Resource<Connection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, Error>> {
        let mut c = self.redis_conn(&conn)?;
        Ok(c.incr::<_, _, i64>(&key, 1).await.map_err(other))
    }

    async fn del(
        &mut self,
        conn: Resource<Connection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut c = self.redis_conn(&conn)?;
        Ok(c.del::<_, u32>(&keys).await.map_err(other))
    }

    async fn sadd(
        &mut self,
        conn: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut c = self.redis_conn(&conn)?;
        Ok(c.sadd::<_, _, u32>(&key, &values).await.map_err(|e| {
            if e.kind() == redis::ErrorKind::UnexpectedReturnType {
                Error::TypeError
            } else {
                other(e)
            }
        }))
    }

    async fn smembers(
        &mut self,
        conn: Resource<Connection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let mut c = self.redis_conn(&conn)?;
        Ok(c.smembers::<_, Vec<String>>(&key).await.map_err(other))
    }

    async fn srem(
        &mut self,
        conn: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut c = self.redis_conn(&conn)?;
        Ok(c.srem::<_, _, u32>(&key, &values).await.map_err(other))
    }

    async fn execute(
        &mut self,
        conn: Resource<Connection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, Error>> {
        let mut c = self.redis_conn(&conn)?;
        Ok(execute(&mut c, &command, arguments).await)
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn open_denies_addresses_not_in_allowed_outbound_hosts() {
        let mut state = HostState::for_test(&["redis://127.0.0.1:6380", "http://127.0.0.1:6379"]);
        for address in [
            "redis://127.0.0.1:6379",  // port not allowed
            "redis://localhost:6380",  // host not allowed
            "redis://127.0.0.1",       // default port 6379
            "rediss://127.0.0.1:6380", // scheme not allowed
            "not a url",
            "",
        ] {
            let res = HostConnection::open(&mut state, address.to_string())
                .await
                .unwrap();
            assert!(
                matches!(res, Err(Error::InvalidAddress)),
                "{address}: {:?}",
                res.err()
            );
        }
        // Nothing listens there (probably), but the address is allowed, so
        // the failure is a connection error, not `invalid-address`.
        let port = free_port();
        let mut state = HostState::for_test(&[&format!("redis://127.0.0.1:{port}")]);
        let res = HostConnection::open(&mut state, format!("redis://127.0.0.1:{port}"))
            .await
            .unwrap();
        assert!(matches!(res, Err(Error::Other(_))), "{:?}", res.err());
    }

    #[test]
    fn flatten_matches_spin() {
        let mut out = Vec::new();
        flatten(
            &mut out,
            Value::Array(vec![
                Value::Int(7),
                Value::BulkString(b"x".to_vec()),
                Value::Nil,
                Value::Array(vec![Value::Okay, Value::SimpleString("PONG".into())]),
                Value::Boolean(true),
                Value::Double(1.5),
            ]),
        )
        .unwrap();
        let expected = [
            RedisResult::Int64(7),
            RedisResult::Binary(b"x".to_vec()),
            RedisResult::Nil,
            RedisResult::Status("OK".into()),
            RedisResult::Status("PONG".into()),
            RedisResult::Int64(1),
            RedisResult::Binary(b"1.5".to_vec()),
        ];
        assert_eq!(format!("{out:?}"), format!("{expected:?}"));
        assert!(flatten(&mut Vec::new(), Value::Map(vec![])).is_err());
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn redis_server_binary() -> Option<PathBuf> {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    }

    /// A throwaway `redis-server` on a free loopback port, killed on drop.
    struct RedisServer {
        child: Child,
        port: u16,
    }

    impl RedisServer {
        fn start(bin: &PathBuf) -> Self {
            let port = free_port();
            let child = Command::new(bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let server = Self { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            server
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn bin(s: &str) -> RedisParameter {
        RedisParameter::Binary(s.as_bytes().to_vec())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn against_real_redis_server() {
        let Some(bin_path) = redis_server_binary() else {
            eprintln!("skipping against_real_redis_server: no redis-server on PATH");
            return;
        };
        let server = RedisServer::start(&bin_path);
        let address = format!("redis://127.0.0.1:{}", server.port);
        let mut state = HostState::for_test(&[&address]);
        let conn = HostConnection::open(&mut state, address.clone())
            .await
            .unwrap()
            .unwrap();
        let c = || Resource::<Connection>::new_borrow(conn.rep());

        // EVAL with a Lua script returning a (nested) array, like the rate limiter.
        let script = "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) \
                      redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
                      return {n, redis.call('PTTL', KEYS[1]) > 0 and 1 or 0, 'hi', {false, 'x'}}";
        let args = vec![
            bin(script),
            RedisParameter::Int64(1),
            bin("rl:test"),
            RedisParameter::Int64(5),
            RedisParameter::Int64(60_000),
        ];
        let res = HostConnection::execute(&mut state, c(), "EVAL".into(), args.clone())
            .await
            .unwrap()
            .unwrap();
        let expected = [
            RedisResult::Int64(5),
            RedisResult::Int64(1),
            RedisResult::Binary(b"hi".to_vec()),
            RedisResult::Nil,
            RedisResult::Binary(b"x".to_vec()),
        ];
        assert_eq!(format!("{res:?}"), format!("{expected:?}"));
        let res = HostConnection::execute(&mut state, c(), "EVAL".into(), args)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(res[0], RedisResult::Int64(10)), "{res:?}");

        // Status and error replies.
        let res = HostConnection::execute(&mut state, c(), "SET".into(), vec![bin("k"), bin("v")])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            format!("{res:?}"),
            format!("{:?}", [RedisResult::Status("OK".into())])
        );
        let res = HostConnection::execute(&mut state, c(), "NOSUCHCMD".into(), vec![])
            .await
            .unwrap();
        assert!(matches!(res, Err(Error::Other(_))), "{res:?}");

        // The typed operations.
        HostConnection::set(&mut state, c(), "a".into(), b"1".to_vec())
            .await
            .unwrap()
            .unwrap();
        let got = HostConnection::get(&mut state, c(), "a".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.as_deref(), Some(&b"1"[..]));
        let got = HostConnection::get(&mut state, c(), "missing".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, None);
        let n = HostConnection::incr(&mut state, c(), "a".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 2);
        let added = HostConnection::sadd(&mut state, c(), "s".into(), vec!["x".into(), "y".into()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(added, 2);
        let removed = HostConnection::srem(&mut state, c(), "s".into(), vec!["x".into()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(removed, 1);
        let members = HostConnection::smembers(&mut state, c(), "s".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(members, vec!["y".to_string()]);
        let deleted =
            HostConnection::del(&mut state, c(), vec!["a".into(), "s".into(), "zz".into()])
                .await
                .unwrap()
                .unwrap();
        assert_eq!(deleted, 2);
        HostConnection::publish(&mut state, c(), "chan".into(), b"m".to_vec())
            .await
            .unwrap()
            .unwrap();
        HostConnection::drop(&mut state, conn).await.unwrap();

        // Server gone: ops fail with `other`, they do not trap.
        drop(server);
        let conn = HostConnection::open(&mut state, address).await.unwrap();
        assert!(matches!(conn, Err(Error::Other(_))), "{:?}", conn.err());
    }
}
