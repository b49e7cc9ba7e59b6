//! `spin-test-host`: serve a Spin app like `spin up`, for local testing.
//!
//! Usage: `spin-test-host [--manifest spin.toml] [--listen 127.0.0.1:3000]
//! [--state-dir .spin] [--var name=value]...`

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use spin_test_host::{HostOptions, RunningHost};

fn main() -> Result<()> {
    let mut opts = HostOptions::new("spin.toml", ".spin");
    opts.listen = "127.0.0.1:3000".parse()?;
    opts.echo_guest_output = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--manifest" | "-f" => opts.manifest = PathBuf::from(value("--manifest")?),
            "--listen" => opts.listen = value("--listen")?.parse().context("bad --listen")?,
            "--state-dir" => opts.state_dir = PathBuf::from(value("--state-dir")?),
            "--var" => {
                let kv = value("--var")?;
                let (k, v) = kv.split_once('=').context("--var expects name=value")?;
                opts.variables.insert(k.to_string(), v.to_string());
            }
            "-h" | "--help" => {
                println!(
                    "usage: spin-test-host [--manifest spin.toml] [--listen 127.0.0.1:3000] \
                     [--state-dir .spin] [--var name=value]..."
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    let host = RunningHost::start(opts)?;
    let base = host.base_url();
    println!("\nServing {base}");
    println!("Available Routes:");
    for (component, route) in host.routes() {
        match route.strip_suffix("/...") {
            Some(prefix) => println!("  {component}: {base}{prefix} (wildcard)"),
            None => println!("  {component}: {base}{route}"),
        }
    }
    host.wait();
    Ok(())
}
