//! The HTTP server, mirroring Spin's `trigger-http` (`server.rs`,
//! `headers.rs`, `wasi.rs`):
//!
//! * routes with [`crate::routes::Router`]; no match → bare `404`;
//!   `/.well-known/spin/health` → `200 OK`;
//! * keeps the client's headers (client-sent `spin-*` ones too) and appends
//!   `spin-full-url`, `spin-path-info`, `spin-matched-route`, `spin-base-path`,
//!   `spin-raw-component-route`, `spin-component-route`, `spin-client-addr` and
//!   `spin-path-match-<name>` after them, as Spin does;
//!   the request URI is made absolute (`http://<Host><path?query>`);
//! * a fresh `Store` per request, instantiated from a `ProxyPre` built once
//!   per component; a trap or a missing response → bare `500`;
//! * compiled components are cached process-wide by (path, mtime, size).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWrite;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::kv::KvBackend;
use crate::manifest::{Manifest, RouteConfig};
use crate::outbound::{AllowedHosts, OutboundHooks};
use crate::routes::{RouteMatch, Router};
use crate::{Faults, GuestLog, HostOptions};

/// Per-component configuration derived from the manifest.
pub(crate) struct ComponentConfig {
    pub(crate) id: Arc<str>,
    pub(crate) key_value_stores: HashSet<String>,
    pub(crate) sqlite_databases: HashSet<String>,
    pub(crate) variables: HashMap<String, String>,
    pub(crate) allowed_hosts: Arc<AllowedHosts>,
    environment: Vec<(String, String)>,
}

/// State shared by all requests of one host.
pub(crate) struct Shared {
    pub(crate) faults: Faults,
    pub(crate) kv: KvBackend,
    pub(crate) state_dir: PathBuf,
    log: GuestLog,
    echo: bool,
}

/// The `T` of each per-request `Store<T>`.
pub struct HostState {
    pub(crate) table: ResourceTable,
    pub(crate) shared: Arc<Shared>,
    pub(crate) component: Arc<ComponentConfig>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

struct LoadedComponent {
    config: Arc<ComponentConfig>,
    pre: ProxyPre<HostState>,
}

struct App {
    engine: Engine,
    router: Router,
    components: HashMap<String, LoadedComponent>,
    shared: Arc<Shared>,
}

static ENGINE: OnceLock<Engine> = OnceLock::new();
type CacheKey = (PathBuf, SystemTime, u64);
static COMPILED: LazyLock<Mutex<HashMap<CacheKey, Component>>> = LazyLock::new(Default::default);

fn engine() -> Result<&'static Engine> {
    if let Some(e) = ENGINE.get() {
        return Ok(e);
    }
    let mut config = Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config).map_err(|e| anyhow!("{e:?}"))?;
    Ok(ENGINE.get_or_init(|| engine))
}

/// Compiles a component once per process (keyed by path, mtime and size).
fn load_component(path: &Path) -> Result<Component> {
    let path = path
        .canonicalize()
        .with_context(|| format!("component {} not found (build it first)", path.display()))?;
    let meta = std::fs::metadata(&path)?;
    let key = (path.clone(), meta.modified()?, meta.len());
    let mut cache = COMPILED
        .lock()
        .map_err(|_| anyhow!("compile cache poisoned"))?;
    if let Some(c) = cache.get(&key) {
        return Ok(c.clone());
    }
    let component = Component::from_file(engine()?, &path)
        .map_err(|e| anyhow!("{e:?}"))
        .with_context(|| format!("compiling {}", path.display()))?;
    cache.insert(key, component.clone());
    Ok(component)
}

impl App {
    fn load(opts: &HostOptions, faults: Faults, log: GuestLog) -> Result<Self> {
        let manifest = Manifest::load(&opts.manifest)?;
        let app_vars = crate::variables::resolve_app_variables(
            &manifest.variables,
            |k| std::env::var(k).ok(),
            &opts.variables,
        )?;
        let router = Router::build(manifest.trigger.http.iter().filter_map(|t| match &t.route {
            RouteConfig::Route(r) => Some((t.component.as_str(), r.as_str())),
            RouteConfig::Private { .. } => None,
        }))?;
        std::fs::create_dir_all(&opts.state_dir)
            .with_context(|| format!("cannot create {}", opts.state_dir.display()))?;
        let shared = Arc::new(Shared {
            faults,
            kv: KvBackend::open(&opts.state_dir)?,
            state_dir: opts.state_dir.clone(),
            log,
            echo: opts.echo_guest_output,
        });

        let engine = engine()?;
        let mut linker = Linker::<HostState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow!("{e:?}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| anyhow!("{e:?}"))?;
        crate::bindings::SpinHost::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| anyhow!("{e:?}"))?;

        let mut components = HashMap::new();
        let used: HashSet<&str> = manifest
            .trigger
            .http
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        for id in used {
            let decl = &manifest.component[id];
            let ctx = || format!("component {id:?}");
            let config = ComponentConfig {
                id: Arc::from(id),
                key_value_stores: decl.key_value_stores.iter().cloned().collect(),
                sqlite_databases: decl.sqlite_databases.iter().cloned().collect(),
                variables: crate::variables::resolve_component_variables(
                    &decl.variables,
                    &app_vars,
                )
                .with_context(ctx)?,
                allowed_hosts: Arc::new(
                    AllowedHosts::parse(&decl.allowed_outbound_hosts, &app_vars)
                        .with_context(ctx)?,
                ),
                environment: decl.environment.clone().into_iter().collect(),
            };
            let component = load_component(&manifest.source_path(&opts.manifest, id)?)?;
            let pre = linker
                .instantiate_pre(&component)
                .and_then(ProxyPre::new)
                .map_err(|e| anyhow!("{e:?}"))
                .with_context(|| {
                    format!(
                        "component {id:?}: cannot link (not a wasi:http component, or it \
                         imports a Spin interface this test host does not provide)"
                    )
                })?;
            components.insert(
                id.to_string(),
                LoadedComponent {
                    config: Arc::new(config),
                    pre,
                },
            );
        }
        Ok(Self {
            engine: engine.clone(),
            router,
            components,
            shared,
        })
    }

    fn new_state(&self, config: &Arc<ComponentConfig>) -> HostState {
        let out = |stderr| GuestOutput {
            log: self.shared.log.clone(),
            echo: self.shared.echo,
            stderr,
        };
        let mut wasi = WasiCtx::builder();
        wasi.stdout(out(false)).stderr(out(true));
        wasi.envs(&config.environment);
        HostState {
            table: ResourceTable::new(),
            shared: self.shared.clone(),
            component: config.clone(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                allowed: config.allowed_hosts.clone(),
                component_id: config.id.clone(),
            },
        }
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
        local: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let path = req.uri().path().to_string();
        if let Some(rest) = path.strip_prefix("/.well-known/spin/") {
            return match rest {
                "health" => response(StatusCode::OK, Bytes::from_static(b"OK")),
                _ => response(StatusCode::NOT_FOUND, Bytes::new()),
            };
        }
        let Some(route_match) = self.router.route(&path) else {
            return response(StatusCode::NOT_FOUND, Bytes::new());
        };
        match self.execute(req, &route_match, client, local).await {
            Ok(resp) => resp,
            Err(e) => {
                eprintln!("Error processing request to {path}: {e:?}");
                response(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new())
            }
        }
    }

    async fn execute(
        &self,
        req: Request<Incoming>,
        route_match: &RouteMatch<'_>,
        client: SocketAddr,
        local: SocketAddr,
    ) -> Result<Response<HyperOutgoingBody>> {
        let component = self
            .components
            .get(&route_match.route.component_id)
            .context("routed to an unloaded component")?;
        let req = prepare_request(req, route_match, client, local)?;
        let mut store = Store::new(&self.engine, self.new_state(&component.config));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (in_req, out) = {
            let mut http = store.data_mut().http();
            let in_req = http
                .new_incoming_request(Scheme::Http, req)
                .map_err(|e| anyhow!("{e:?}"))?;
            (
                in_req,
                http.new_response_outparam(tx)
                    .map_err(|e| anyhow!("{e:?}"))?,
            )
        };
        let pre = component.pre.clone();
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, in_req, out)
                .await
        });
        match rx.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => Err(anyhow!("guest returned error code {code:?}")),
            Err(_) => {
                let result = task.await.context("guest task panicked")?;
                result.map_err(|e| anyhow!("guest invocation failed: {e:?}"))?;
                Err(anyhow!("guest did not set a response"))
            }
        }
    }
}

fn response(status: StatusCode, body: Bytes) -> Response<HyperOutgoingBody> {
    let body = if body.is_empty() {
        Empty::new()
            .map_err(|e: Infallible| match e {})
            .boxed_unsync()
    } else {
        Full::new(body)
            .map_err(|e: Infallible| match e {})
            .boxed_unsync()
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp
}

/// Adds the `spin-*` headers and makes the URI absolute, like Spin's
/// `prepare_request_headers` and `set_req_uri`.
fn prepare_request(
    mut req: Request<Incoming>,
    m: &RouteMatch<'_>,
    client: SocketAddr,
    local: SocketAddr,
) -> Result<Request<Incoming>> {
    let host = match req.headers().get(hyper::header::HOST) {
        Some(h) => h.to_str().context("Host header is not UTF-8")?.to_string(),
        None => local.to_string(),
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let full_url = format!("http://{host}{path_and_query}");
    *req.uri_mut() = full_url.parse().context("invalid request URI")?;
    let mut spin_headers = vec![
        ("spin-path-info".to_string(), m.path_info.clone()),
        ("spin-full-url".to_string(), full_url),
        (
            "spin-matched-route".to_string(),
            m.route.based_route.clone(),
        ),
        ("spin-base-path".to_string(), "/".to_string()),
        (
            "spin-raw-component-route".to_string(),
            m.route.raw_route.clone(),
        ),
        (
            "spin-component-route".to_string(),
            m.raw_route_or_prefix().to_string(),
        ),
        ("spin-client-addr".to_string(), client.to_string()),
    ];
    for (name, value) in &m.params {
        spin_headers.push((
            format!("spin-path-match-{}", name.to_ascii_lowercase()),
            value.clone(),
        ));
    }
    let headers = req.headers_mut();
    if !headers.contains_key(hyper::header::HOST) {
        headers.insert(hyper::header::HOST, host.parse()?);
    }
    // Spin keeps every header the client sent (a client-sent `spin-client-addr` included) and
    // then *appends* its own (`prepare_request_headers`, then `clear()` + `extend()`, which
    // appends): a forged `spin-*` header comes first, Spin's value last.
    for (name, value) in spin_headers {
        let name: hyper::header::HeaderName = name.parse()?;
        headers.append(name, value.parse()?);
    }
    Ok(req)
}

/// Guest stdout/stderr: split into lines, stored in the [`GuestLog`] and
/// optionally echoed.
#[derive(Clone)]
struct GuestOutput {
    log: GuestLog,
    echo: bool,
    stderr: bool,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            out: self.clone(),
            buf: Vec::new(),
        })
    }
}

struct LineWriter {
    out: GuestOutput,
    buf: Vec<u8>,
}

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
        if self.out.echo {
            if self.out.stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
        self.out.log.push(line);
    }

    fn flush_partial(&mut self) {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.emit(&rest);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.buf.extend_from_slice(data);
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            self.emit(&line[..pos]);
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.flush_partial();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush_partial();
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let Ok((stream, client)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.handle(req, client, local).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A host serving one application; stops on [`RunningHost::shutdown`] or drop.
pub struct RunningHost {
    addr: SocketAddr,
    faults: Faults,
    log: GuestLog,
    routes: Vec<(String, String)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningHost {
    /// Loads the manifest, compiles (or reuses) the components, binds the
    /// listener and serves on a background thread with its own multi-thread
    /// tokio runtime. Returns once the socket is listening.
    pub fn start(opts: HostOptions) -> Result<Self> {
        let faults = Faults::default();
        let log = GuestLog::default();
        let app = Arc::new(App::load(&opts, faults.clone(), log.clone())?);
        let routes = app
            .router
            .routes()
            .iter()
            .map(|r| (r.component_id.clone(), r.based_route.clone()))
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("spin-test-host")
            .build()?;
        let std_listener = std::net::TcpListener::bind(opts.listen)
            .with_context(|| format!("cannot listen on {}", opts.listen))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("spin-test-host-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(serve(listener, app, rx));
                runtime.shutdown_timeout(Duration::from_secs(2));
            })?;
        Ok(Self {
            addr,
            faults,
            log,
            routes,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `(component id, route)` pairs in manifest order; wildcard routes end
    /// in `/...`.
    pub fn routes(&self) -> &[(String, String)] {
        &self.routes
    }

    /// Fault-injection switches and call counters for this host.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// The captured guest output log.
    pub fn guest_log(&self) -> GuestLog {
        self.log.clone()
    }

    /// All guest stdout/stderr lines captured so far.
    pub fn guest_log_lines(&self) -> Vec<String> {
        self.log.lines()
    }

    /// Removes and returns the captured guest lines.
    pub fn take_guest_log_lines(&self) -> Vec<String> {
        self.log.take()
    }

    /// Stops accepting connections, cancels in-flight work and joins the
    /// server thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Blocks until the server thread exits (i.e. forever, for the binary).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
impl HostState {
    /// A bare per-request state for unit tests of host interfaces: one
    /// component `test` with the given `allowed_outbound_hosts` (literal
    /// entries) and its state under a fresh temporary directory.
    pub(crate) fn for_test(allowed_outbound_hosts: &[&str]) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let state_dir = std::env::temp_dir().join(format!(
            "spin-test-host-unit-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&state_dir).expect("create state dir");
        let entries: Vec<String> = allowed_outbound_hosts
            .iter()
            .map(|s| s.to_string())
            .collect();
        let allowed = Arc::new(AllowedHosts::parse(&entries, &HashMap::new()).expect("hosts"));
        let component = Arc::new(ComponentConfig {
            id: Arc::from("test"),
            key_value_stores: HashSet::new(),
            sqlite_databases: HashSet::new(),
            variables: HashMap::new(),
            allowed_hosts: allowed.clone(),
            environment: Vec::new(),
        });
        HostState {
            table: ResourceTable::new(),
            shared: Arc::new(Shared {
                faults: Faults::default(),
                kv: KvBackend::open(&state_dir).expect("kv"),
                state_dir,
                log: GuestLog::default(),
                echo: false,
            }),
            component: component.clone(),
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                allowed,
                component_id: component.id.clone(),
            },
        }
    }
}
