//! The bridge from Spin's `wasi:http/incoming-handler` to [`crate::pipeline::serve`]. A component's
//! `lib.rs` is only:
//!
//! ```ignore
//! #[spin_sdk::http_component]
//! async fn handle(req: IncomingRequest, out: ResponseOutparam) {
//!     shared::spin_entry::serve(routes::table(), req, out).await
//! }
//! ```

use std::cell::RefCell;
use std::rc::Rc;

use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

use crate::http::RequestHead;
use crate::pipeline::{self, BodyError, BodySource};
use crate::router::RouteTable;
use crate::services::Services;

/// Serves one Spin request with the Spin stores.
pub async fn serve(table: RouteTable, req: IncomingRequest, out: ResponseOutparam) {
    respond(table, req, out).await;
}

/// [`serve`], then the work handlers deferred with [`Services::defer`] (e.g. the webhooks
/// component's repository syncs), after the response is complete. Only components that defer
/// work use it, so the others carry none of its code (the wasm size budget).
pub async fn serve_with_deferred(table: RouteTable, req: IncomingRequest, out: ResponseOutparam) {
    respond(table, req, out).await.run_deferred().await;
}

async fn respond(table: RouteTable, req: IncomingRequest, out: ResponseOutparam) -> Rc<Services> {
    let head = head_of(&req);
    let declared = head
        .header("content-length")
        .and_then(|v| v.trim().parse::<usize>().ok());
    let services = Rc::new(Services::spin());
    let request = Rc::new(RefCell::new(Some(req)));
    let response = pipeline::serve(&table, services.clone(), head, SpinBody(request.clone())).await;
    // A body the pipeline answered before reading (405 from the method gate, 400 from the input
    // guard, 413 on a declared length) stays open until the response is written, and a small one
    // is read and dropped first: Spin closes the connection of a request whose body was dropped
    // unread, and the answer was cut off with it (its headers arrived, its body did not, in about
    // 2 % of such requests). A large or undeclared body is not waited for: the client may be
    // waiting for the answer before it sends (a declared 413).
    if declared.is_some_and(|n| n <= UNREAD_DRAIN) {
        let _ = SpinBody(request.clone()).read_limited(UNREAD_DRAIN).await;
    }
    let entries: Vec<(String, Vec<u8>)> = response
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(fields);
    // Our status codes are all valid; if the host refused one, it answers 200 with our body.
    let _ = outgoing.set_status_code(response.status.as_u16());
    // The client may have gone away; there is nobody left to tell.
    let _ = out.set_with_body(outgoing, response.body).await;
    drop(request);
    // Deferred work, after the response is complete: Spin keeps the component running and the
    // client does not wait for it (sealing the audit chain, see `Services::after_response`).
    services.after_response();
    services
}

fn head_of(req: &IncomingRequest) -> RequestHead {
    use spin_sdk::http::Method as M;
    let method = match req.method() {
        M::Get => Some(Method::GET),
        M::Head => Some(Method::HEAD),
        M::Post => Some(Method::POST),
        M::Put => Some(Method::PUT),
        M::Delete => Some(Method::DELETE),
        M::Connect => Some(Method::CONNECT),
        M::Options => Some(Method::OPTIONS),
        M::Trace => Some(Method::TRACE),
        M::Patch => Some(Method::PATCH),
        M::Other(token) => Method::from_bytes(token.as_bytes()).ok(),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in req.headers().entries() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            headers.append(name, value);
        }
    }
    let path_and_query = req.path_with_query().unwrap_or_else(|| "/".to_owned());
    RequestHead::new(method, &path_and_query, headers)
}

/// The largest declared body that is read and dropped, unread by the pipeline, before the answer
/// (see [`respond`]).
const UNREAD_DRAIN: usize = 64 * 1024;

/// The request, until the pipeline reads its body ([`respond`] keeps it otherwise).
struct SpinBody(Rc<RefCell<Option<IncomingRequest>>>);

impl BodySource for SpinBody {
    async fn read_limited(self, limit: usize) -> Result<Vec<u8>, BodyError> {
        let Some(req) = self.0.borrow_mut().take() else {
            return Ok(Vec::new());
        };
        let mut stream = req.into_body_stream();
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BodyError::Io(format!("{e:?}")))?;
            if body.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
