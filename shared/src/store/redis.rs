//! Outbound Redis as a store trait: the one operation the code base needs, `EVAL` of a script
//! whose reply is a list of integers (the rate limiter's GCRA, [`crate::rate_limit::redis`]).
//! The Spin adapter is [`crate::store::spin::SpinRedis`]; [`TcpRedis`] (feature `native`) speaks
//! RESP over TCP for unit tests against a real `redis-server`.

use super::StoreError;

/// Opens a connection to `url` (`redis://[:password@]host:port`).
pub trait RedisOpener {
    fn open(&self, url: &str) -> Result<Box<dyn RedisStore>, StoreError>;
}

/// One Redis connection.
pub trait RedisStore {
    /// `EVAL script len(keys) keys… args…`; the reply flattened to integers (numeric strings are
    /// parsed, anything else is an error).
    fn eval(&self, script: &str, keys: &[String], args: &[i64]) -> Result<Vec<i64>, StoreError>;
}

/// No Redis configured for this host: every open fails (503 when the backend is selected).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRedis;

impl RedisOpener for NoRedis {
    fn open(&self, _url: &str) -> Result<Box<dyn RedisStore>, StoreError> {
        Err(StoreError::kv("redis: no outbound Redis on this host"))
    }
}

#[cfg(feature = "native")]
pub use native::TcpRedis;

#[cfg(feature = "native")]
mod native {
    use std::cell::RefCell;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use super::{RedisOpener, RedisStore, StoreError};

    /// Redis over a plain TCP connection (RESP2), for native tests.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct TcpRedis;

    fn err(e: impl std::fmt::Display) -> StoreError {
        StoreError::kv(format!("redis: {e}"))
    }

    impl RedisOpener for TcpRedis {
        fn open(&self, url: &str) -> Result<Box<dyn RedisStore>, StoreError> {
            let rest = url
                .strip_prefix("redis://")
                .ok_or_else(|| err("not a redis:// URL"))?;
            let (password, host) = match rest.rsplit_once('@') {
                Some((auth, host)) => (Some(auth.trim_start_matches(':').to_owned()), host),
                None => (None, rest),
            };
            let host = host.trim_end_matches('/');
            let stream = TcpStream::connect(host).map_err(err)?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(err)?;
            let conn = Conn {
                reader: RefCell::new(BufReader::new(stream.try_clone().map_err(err)?)),
                writer: RefCell::new(stream),
            };
            if let Some(password) = password.filter(|p| !p.is_empty()) {
                conn.command(&[b"AUTH".to_vec(), password.into_bytes()])?;
            }
            Ok(Box::new(conn))
        }
    }

    struct Conn {
        reader: RefCell<BufReader<TcpStream>>,
        writer: RefCell<TcpStream>,
    }

    impl Conn {
        fn command(&self, parts: &[Vec<u8>]) -> Result<Vec<i64>, StoreError> {
            let mut out = format!("*{}\r\n", parts.len()).into_bytes();
            for part in parts {
                out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
                out.extend_from_slice(part);
                out.extend_from_slice(b"\r\n");
            }
            self.writer.borrow_mut().write_all(&out).map_err(err)?;
            let mut numbers = Vec::new();
            self.read(&mut numbers)?;
            Ok(numbers)
        }

        fn line(&self) -> Result<String, StoreError> {
            let mut line = String::new();
            self.reader.borrow_mut().read_line(&mut line).map_err(err)?;
            Ok(line.trim_end_matches(['\r', '\n']).to_owned())
        }

        /// Reads one reply, appending its integers (arrays flattened).
        fn read(&self, into: &mut Vec<i64>) -> Result<(), StoreError> {
            let line = self.line()?;
            let (kind, rest) = line.split_at(line.len().min(1));
            let number = |text: &str| text.parse::<i64>().map_err(|_| err("bad reply"));
            match kind {
                ":" => into.push(number(rest)?),
                "+" => {
                    if let Ok(n) = rest.parse() {
                        into.push(n);
                    }
                }
                "-" => return Err(err(rest)),
                "$" => {
                    let len = number(rest)?;
                    if len >= 0 {
                        let text = self.line()?;
                        into.push(number(&text)?);
                    }
                }
                "*" => {
                    for _ in 0..number(rest)?.max(0) {
                        self.read(into)?;
                    }
                }
                _ => return Err(err("unexpected reply")),
            }
            Ok(())
        }
    }

    impl RedisStore for Conn {
        fn eval(
            &self,
            script: &str,
            keys: &[String],
            args: &[i64],
        ) -> Result<Vec<i64>, StoreError> {
            let mut parts = vec![
                b"EVAL".to_vec(),
                script.as_bytes().to_vec(),
                keys.len().to_string().into_bytes(),
            ];
            parts.extend(keys.iter().map(|k| k.as_bytes().to_vec()));
            parts.extend(args.iter().map(|a| a.to_string().into_bytes()));
            self.command(&parts)
        }
    }
}
