//! IPAM's HTTP routes, as Weave's (reference weave-services.md §2.3): registered only when
//! IPAM is on, so a script sees 404 for a disabled feature.

// The helpers return the error response itself; handlers answer it at once, so boxing it
// would only add an allocation.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use weft_ipam::addr::Cidr;
use weft_ipam::allocator::Reply;

use super::{IpamHandle, Stopped};
use crate::api::{form, text, values, ApiState};

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/ip", get(owned))
        .route(
            "/ip/{id}",
            post(allocate_default)
                .get(lookup_default)
                .delete(delete_all),
        )
        .route("/ip/{id}/{ip}", delete(free_one))
        .route(
            "/ip/{id}/{net}/{len}",
            post(allocate_in).get(lookup_in).put(claim),
        )
        .route("/ring", get(prime))
        .route("/ipinfo/defaultsubnet", get(default_subnet))
        .route("/ipinfo/tracker", get(tracker))
}

fn ipam(s: &ApiState) -> Result<&IpamHandle, Response> {
    s.ipam
        .as_ref()
        .ok_or_else(|| text(StatusCode::NOT_FOUND, "404 page not found\n".into()))
}

fn stopped(_: Stopped) -> Response {
    text(StatusCode::SERVICE_UNAVAILABLE, "IPAM is stopping\n".into())
}

fn bad(msg: impl std::fmt::Display) -> Response {
    text(StatusCode::BAD_REQUEST, format!("{msg}\n"))
}

fn flag(pairs: &[(String, String)], key: &str) -> bool {
    values(pairs, key).iter().any(|v| v == "true")
}

/// A subnet from the path, with Weave's checks and messages.
fn subnet(net: &str, len: &str) -> Result<Cidr, Response> {
    weft_ipam::addr::parse_subnet(&format!("{net}/{len}")).map_err(bad)
}

fn plain(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn allocated(result: Result<Result<Reply, weft_ipam::allocator::IpamError>, Stopped>) -> Response {
    match result {
        Err(e) => stopped(e),
        Ok(Ok(Reply::Allocated(c))) => plain(c.to_string()),
        Ok(Ok(Reply::Cancelled)) => plain("cancelled".into()),
        Ok(Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => bad(e),
    }
}

async fn allocate(
    s: &ApiState,
    id: String,
    subnet: Option<Cidr>,
    query: Option<&str>,
    body: &[u8],
) -> Response {
    let h = match ipam(s) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let pairs = form(query, body);
    let subnet = subnet.unwrap_or(h.default_subnet);
    allocated(h.allocate(id, subnet, flag(&pairs, "check-alive")).await)
}

async fn allocate_default(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    allocate(&s, id, None, q.as_deref(), &body).await
}

async fn allocate_in(
    State(s): State<Arc<ApiState>>,
    Path((id, net, len)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let cidr = match subnet(&net, &len) {
        Ok(c) => c,
        Err(r) => return r,
    };
    allocate(&s, id, Some(cidr), q.as_deref(), &body).await
}

async fn claim(
    State(s): State<Arc<ApiState>>,
    Path((id, ip, len)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let h = match ipam(&s) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let text_cidr = format!("{ip}/{len}");
    let cidr: Cidr = match text_cidr.parse() {
        Ok(c) => c,
        Err(e) => return bad(format!("invalid CIDR {text_cidr}: {e}")),
    };
    let pairs = form(q.as_deref(), &body);
    match h
        .claim(
            id,
            cidr,
            flag(&pairs, "check-alive"),
            flag(&pairs, "noErrorOnUnknown"),
        )
        .await
    {
        Err(e) => stopped(e),
        Ok(Ok(Reply::Cancelled)) => plain("cancelled".into()),
        Ok(Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => bad(format!("Unable to claim: {e}")),
    }
}

async fn lookup(s: &ApiState, id: String, subnet: Option<Cidr>) -> Response {
    let h = match ipam(s) {
        Ok(h) => h,
        Err(r) => return r,
    };
    match h.lookup(id, subnet).await {
        Err(e) => stopped(e),
        Ok(cidrs) if cidrs.is_empty() => StatusCode::OK.into_response(),
        Ok(cidrs) => plain(
            cidrs
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

async fn lookup_default(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    lookup(&s, id, None).await
}

async fn lookup_in(
    State(s): State<Arc<ApiState>>,
    Path((id, net, len)): Path<(String, String, String)>,
) -> Response {
    match subnet(&net, &len) {
        Ok(c) => lookup(&s, id, Some(c)).await,
        Err(r) => r,
    }
}

async fn owned(State(s): State<Arc<ApiState>>) -> Response {
    let h = match ipam(&s) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let owned = match h.owned().await {
        Ok(o) => o,
        Err(e) => return stopped(e),
    };
    let list: Vec<serde_json::Value> = owned
        .into_iter()
        .map(|(id, cidrs)| {
            serde_json::json!({
                "containerid": id,
                "addrs": cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let owned = if list.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::Array(list)
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{}\n", serde_json::json!({ "owned": owned })),
    )
        .into_response()
}

async fn free_one(
    State(s): State<Arc<ApiState>>,
    Path((id, ip)): Path<(String, String)>,
) -> Response {
    let h = match ipam(&s) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let addr: std::net::Ipv4Addr = match ip.parse() {
        Ok(a) => a,
        Err(_) => return bad(format!("invalid IP address: {ip}")),
    };
    match h.free(id, u32::from(addr)).await {
        Err(e) => stopped(e),
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => bad(format!("Unable to free: {e}")),
    }
}

async fn delete_all(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    let h = match ipam(&s) {
        Ok(h) => h,
        Err(r) => return r,
    };
    match h.delete(id).await {
        Err(e) => stopped(e),
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => bad(e),
    }
}

async fn prime(State(s): State<Arc<ApiState>>) -> Response {
    let h = match ipam(&s) {
        Ok(h) => h,
        Err(r) => return r,
    };
    match h.prime().await {
        Err(e) => stopped(e),
        Ok(Err(e)) => bad(e),
        Ok(Ok(_)) => StatusCode::OK.into_response(),
    }
}

async fn default_subnet(State(s): State<Arc<ApiState>>) -> Response {
    match ipam(&s) {
        Ok(h) => plain(h.default_subnet.to_string()),
        Err(r) => r,
    }
}

async fn tracker(State(s): State<Arc<ApiState>>) -> Response {
    match ipam(&s) {
        Ok(_) => plain("\n".into()),
        Err(r) => r,
    }
}

/// `DELETE /peer/{name-or-nickname}` (`weft rmpeer`): take the peer's ranges over.
pub async fn rmpeer(State(s): State<Arc<ApiState>>, Path(peer): Path<String>) -> Response {
    let Some(h) = s.ipam.as_ref() else {
        return plain(String::new());
    };
    let shown = peer.clone();
    match h.takeover(peer).await {
        Err(e) => stopped(e),
        Ok(Ok(n)) => plain(format!("{n} IPs taken over from {shown}\n")),
        Ok(Err(e)) => bad(e),
    }
}

/// `DELETE /peer` (`weft reset`): hand our ranges to another peer before leaving.
pub async fn leave(State(s): State<Arc<ApiState>>) -> Response {
    if let Some(h) = s.ipam.as_ref() {
        if let Err(e) = h.shutdown().await {
            return stopped(e);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
