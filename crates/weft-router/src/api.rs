//! The HTTP API (127.0.0.1:6784 by default), with Weave's paths and conventions: plain-text
//! bodies and errors, form values from the query string or a urlencoded body, 404 for what is
//! not there (scripts use 404 to detect a disabled feature).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use tokio::sync::{oneshot, Semaphore};

use crate::firewall::{self, Firewall, FirewallError};
use crate::mesh_edge::{ApiRequest, ConnStats, DataStats, MeshHandle};
use crate::metrics;
use crate::status::{self, RouterStatus};
use crate::template::{self, TemplateError};
use weft_kernel::nft::CidrKey;

/// At most this many report templates render at once; one more is answered 503 at once
/// instead of queueing behind them.
pub const MAX_RENDERS: usize = 4;
/// A report template that runs longer than this stops with an execution error (500); the
/// evaluator asks the clock itself, so the rendering thread really stops.
pub const RENDER_TIME: Duration = Duration::from_secs(2);

/// What the API handlers use.
pub struct ApiState {
    pub mesh: MeshHandle,
    /// The IPAM service, when IPAM is on (`--ipalloc-range` not empty).
    pub ipam: Option<crate::ipam::IpamHandle>,
    /// weft's nftables state (expose/hide, port filters).
    pub firewall: Arc<Firewall>,
    /// Permits for report template renders (see [`MAX_RENDERS`]).
    renders: Arc<Semaphore>,
}

impl ApiState {
    pub fn new(
        mesh: MeshHandle,
        ipam: Option<crate::ipam::IpamHandle>,
        firewall: Arc<Firewall>,
    ) -> ApiState {
        ApiState {
            mesh,
            ipam,
            firewall,
            renders: Arc::new(Semaphore::new(MAX_RENDERS)),
        }
    }
}

pub fn router(state: Arc<ApiState>) -> Router {
    let app = Router::new()
        .route("/status", get(status_main))
        .route("/status/{view}", get(status_view))
        .route("/report", get(report))
        .route("/connect", post(connect))
        .route("/forget", post(forget))
        .route("/metrics", get(metrics))
        .route("/peer", axum::routing::delete(crate::ipam::http::leave))
        .route(
            "/peer/{peer}",
            axum::routing::delete(crate::ipam::http::rmpeer),
        )
        .route("/expose/{ip}/{len}", post(expose).delete(hide))
        .route("/weft/ports/{ifname}", put(put_port).delete(delete_port))
        .fallback(not_found);
    // IPAM's routes exist only when IPAM is on: scripts read 404 as "disabled".
    let app = if state.ipam.is_some() {
        app.merge(crate::ipam::http::routes())
    } else {
        app
    };
    app.with_state(state)
}

/// A consistent snapshot of everything the status views show.
async fn snapshot(s: &ApiState) -> Result<RouterStatus, Response> {
    snapshot_with_data(s).await.map(|(st, ..)| st)
}

async fn snapshot_with_data(
    s: &ApiState,
) -> Result<(RouterStatus, DataStats, ConnStats, ChannelDrops), Response> {
    let (tx, rx) = oneshot::channel();
    let unavailable = || {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the mesh is not running\n".into(),
        )
    };
    if !s.mesh.request(ApiRequest::Status(tx)).await {
        return Err(unavailable());
    }
    let snap = rx.await.map_err(|_| unavailable())?;
    let mut st = RouterStatus::new(crate::VERSION, snap.mesh);
    st.encryption = snap.encryption;
    st.trusted_subnets = snap.trusted_subnets;
    st.now = snap.taken;
    if let Some(ipam) = &s.ipam {
        st.ipam = Some(ipam.status().await.map_err(|_| unavailable())?);
    }
    Ok((st, snap.data, snap.conns, snap.channel_events_dropped))
}

/// Events dropped per gossip channel a local service implements.
type ChannelDrops = Vec<(String, u64)>;

async fn status_main(State(s): State<Arc<ApiState>>) -> Response {
    match snapshot(&s).await {
        Ok(st) => text(StatusCode::OK, status::status_text(&st)),
        Err(r) => r,
    }
}

async fn status_view(State(s): State<Arc<ApiState>>, Path(view): Path<String>) -> Response {
    let render: fn(&RouterStatus) -> String = match view.as_str() {
        "targets" => status::status_targets,
        "connections" => status::status_connections,
        "peers" => status::status_peers,
        // A disabled feature's view is 404, as Weave answers.
        "ipam" if s.ipam.is_some() => status::status_ipam,
        // dns is not there yet.
        _ => return not_found().await,
    };
    match snapshot(&s).await {
        Ok(st) => text(StatusCode::OK, render(&st)),
        Err(r) => r,
    }
}

async fn report(
    State(s): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "application/json");
    if wants_json {
        let st = match snapshot(&s).await {
            Ok(st) => st,
            Err(r) => return r,
        };
        return (
            [(header::CONTENT_TYPE, "application/json")],
            status::report_pretty(&st),
        )
            .into_response();
    }
    let formats: Vec<String> = form(query.as_deref(), &[])
        .into_iter()
        .filter(|(k, _)| k == "format")
        .map(|(_, v)| v)
        .collect();
    let [format] = formats.as_slice() else {
        return text(
            StatusCode::BAD_REQUEST,
            "error: must supply one format parameter\n".into(),
        );
    };
    // Take a permit before the snapshot, so refused requests cost the mesh actor nothing.
    let Ok(permit) = Arc::clone(&s.renders).try_acquire_owned() else {
        return too_many_renders();
    };
    let st = match snapshot(&s).await {
        Ok(st) => st,
        Err(r) => return r,
    };
    render_report(permit, format.clone(), st, RENDER_TIME).await
}

fn too_many_renders() -> Response {
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many report templates being rendered, try again\n".into(),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

/// Render `format` over the report of `st` on a blocking thread (never on the runtime's
/// workers, which carry the mesh), within `limit`. The permit goes with the thread, so it
/// is released when the render really ends, even if the client has gone.
async fn render_report(
    permit: tokio::sync::OwnedSemaphorePermit,
    format: String,
    st: RouterStatus,
    limit: Duration,
) -> Response {
    let job = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let start = Instant::now();
        let report = status::report_json(&st);
        template::render_until(&format, &report, &mut || start.elapsed() > limit)
    });
    match job.await {
        Ok(result) => template_response(result),
        Err(e) => {
            tracing::error!("report template render failed: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("report template render failed: {e}\n"),
            )
        }
    }
}

/// Form values from the query string and a urlencoded body, as Go's `FormValue` reads them.
pub(crate) fn form(query: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    pairs.extend(form_urlencoded::parse(body).into_owned());
    pairs
}

pub(crate) fn values(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

async fn connect(
    State(s): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let pairs = form(query.as_deref(), &body);
    let peers = values(&pairs, "peer");
    let replace = values(&pairs, "replace").iter().any(|v| v == "true");
    let (tx, rx) = oneshot::channel();
    if !s
        .mesh
        .request(ApiRequest::Connect {
            peers,
            replace,
            reply: tx,
        })
        .await
    {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the mesh is not running\n".into(),
        );
    }
    match rx.await {
        Ok(Ok(())) => text(StatusCode::OK, String::new()),
        Ok(Err(errors)) => {
            let mut msg: String = errors.iter().map(|e| format!("{e}\n")).collect();
            if msg.is_empty() {
                msg.push('\n');
            }
            text(StatusCode::BAD_REQUEST, msg)
        }
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the mesh is not running\n".into(),
        ),
    }
}

async fn forget(
    State(s): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let pairs = form(query.as_deref(), &body);
    let peers = values(&pairs, "peer");
    let (tx, rx) = oneshot::channel();
    if !s
        .mesh
        .request(ApiRequest::Forget { peers, reply: tx })
        .await
        || rx.await.is_err()
    {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the mesh is not running\n".into(),
        );
    }
    text(StatusCode::OK, String::new())
}

/// `a.b.c.d` and `n` from the path as an IPv4 CIDR.
fn path_cidr(ip: &str, len: &str) -> Result<CidrKey, String> {
    let bad =
        || format!("invalid CIDR {ip}/{len}: expected an IPv4 address and a prefix length 0-32\n");
    let addr: std::net::Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = len.parse().map_err(|_| bad())?;
    if prefix > 32 {
        return Err(bad());
    }
    Ok(CidrKey { addr, prefix })
}

/// Runs a blocking firewall operation off the runtime's workers.
async fn firewall_call<T: Send + 'static>(
    s: &ApiState,
    f: impl FnOnce(&Firewall) -> Result<T, FirewallError> + Send + 'static,
) -> Result<T, FirewallError> {
    let fw = Arc::clone(&s.firewall);
    tokio::task::spawn_blocking(move || f(&fw))
        .await
        .unwrap_or_else(|e| {
            Err(FirewallError::Internal(format!(
                "firewall operation failed: {e}"
            )))
        })
}

/// `POST /expose/{ip}/{len}[?skipNAT=true]`, as Weave's: 204; 400 for a bad CIDR or
/// skipNAT; 500 `unable to expose: …`.
async fn expose(
    State(s): State<Arc<ApiState>>,
    Path((ip, len)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let cidr = match path_cidr(&ip, &len) {
        Ok(c) => c,
        Err(m) => return text(StatusCode::BAD_REQUEST, m),
    };
    let pairs = form(query.as_deref(), &body);
    let skip_nat = match values(&pairs, "skipNAT").first().map(String::as_str) {
        None | Some("") => false,
        Some(v) => match firewall::parse_go_bool(v) {
            Some(b) => b,
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("invalid skipNAT={v:?}: expected true or false\n"),
                )
            }
        },
    };
    match firewall_call(&s, move |fw| fw.expose(cidr, skip_nat)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(FirewallError::BadRequest(m)) => text(StatusCode::BAD_REQUEST, format!("{m}\n")),
        Err(e) => {
            tracing::error!("unable to expose {cidr}: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("unable to expose: {e}\n"),
            )
        }
    }
}

/// `DELETE /expose/{ip}/{len}` (weft's own; Weave's script hides by itself): 204, also when
/// it was not exposed.
async fn hide(State(s): State<Arc<ApiState>>, Path((ip, len)): Path<(String, String)>) -> Response {
    let cidr = match path_cidr(&ip, &len) {
        Ok(c) => c,
        Err(m) => return text(StatusCode::BAD_REQUEST, m),
    };
    match firewall_call(&s, move |fw| fw.hide(cidr)).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(FirewallError::BadRequest(m)) => text(StatusCode::BAD_REQUEST, format!("{m}\n")),
        Err(e) => {
            tracing::error!("unable to hide {cidr}: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("unable to hide: {e}\n"),
            )
        }
    }
}

/// `PUT /weft/ports/{ifname}` with `cidr=a.b.c.d/n` (repeatable): the container behind this
/// host veth has these addresses (replacing what was registered).
async fn put_port(
    State(s): State<Arc<ApiState>>,
    Path(ifname): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let pairs = form(query.as_deref(), &body);
    let mut addrs = Vec::new();
    for v in values(&pairs, "cidr") {
        match v
            .parse::<weft_kernel::Cidr>()
            .ok()
            .and_then(|c| CidrKey::v4(c).ok())
        {
            Some(c) => addrs.push(c),
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("invalid cidr={v:?}: expected an IPv4 a.b.c.d/n\n"),
                )
            }
        }
    }
    let name = ifname.clone();
    match firewall_call(&s, move |fw| fw.set_port(&name, addrs)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(FirewallError::BadRequest(m)) => text(StatusCode::BAD_REQUEST, format!("{m}\n")),
        Err(e) => {
            tracing::error!("unable to register port {ifname}: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("unable to register port {ifname}: {e}\n"),
            )
        }
    }
}

/// `DELETE /weft/ports/{ifname}`: 204, also when it was not registered.
async fn delete_port(State(s): State<Arc<ApiState>>, Path(ifname): Path<String>) -> Response {
    let name = ifname.clone();
    match firewall_call(&s, move |fw| fw.remove_port(&name)).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::error!("unable to remove port {ifname}: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("unable to remove port {ifname}: {e}\n"),
            )
        }
    }
}

/// Weave answers template parse errors with 400 and execution errors with 500.
fn template_response(result: Result<String, TemplateError>) -> Response {
    match result {
        Ok(out) => text(StatusCode::OK, out),
        Err(e @ TemplateError::Parse(_)) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        Err(e @ TemplateError::Exec(_)) => {
            tracing::warn!("report template: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("error during template execution: {e}\n"),
            )
        }
    }
}

async fn metrics(State(s): State<Arc<ApiState>>) -> Response {
    match snapshot_with_data(&s).await {
        Ok((st, data, conns, drops)) => {
            let mut body = metrics::render_metrics(&st);
            body.push_str(&data_metrics(&data));
            body.push_str(&conn_metrics(&conns));
            body.push_str(&channel_metrics(&drops));
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                body,
            )
                .into_response()
        }
        Err(r) => r,
    }
}

/// The data plane's counters, in Prometheus text.
fn data_metrics(d: &DataStats) -> String {
    let mut out = String::from(
        "# HELP weft_data_frames_total Ethernet frames handled by the data plane.\n\
         # TYPE weft_data_frames_total counter\n",
    );
    for (dir, n) in [
        ("captured", d.captured),
        ("injected", d.injected),
        ("sent", d.sent_frames),
        ("received", d.received_frames),
    ] {
        out.push_str(&format!(
            "weft_data_frames_total{{direction=\"{dir}\"}} {n}\n"
        ));
    }
    out.push_str(
        "# HELP weft_data_dropped_total Frames and sleeve packets dropped, by reason.\n\
         # TYPE weft_data_dropped_total counter\n",
    );
    for (reason, n) in &d.drops {
        out.push_str(&format!(
            "weft_data_dropped_total{{reason=\"{reason}\"}} {n}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP weft_data_frag_needed_total ICMP \"fragmentation needed\" replies to too-big DF frames.\n\
         # TYPE weft_data_frag_needed_total counter\n\
         weft_data_frag_needed_total {}\n",
        d.frag_needed
    ));
    out.push_str(&format!(
        "# HELP weft_sleeve_segmented_datagrams_total Sleeve datagrams cut into path-MTU segments (to weft peers), and put back together.\n\
         # TYPE weft_sleeve_segmented_datagrams_total counter\n\
         weft_sleeve_segmented_datagrams_total{{direction=\"sent\"}} {}\n\
         weft_sleeve_segmented_datagrams_total{{direction=\"received\"}} {}\n",
        d.segmented_sent, d.reassembled
    ));
    out.push_str(
        "# HELP weft_sleeve_frames_total Frames sent to and received from each connected peer over the sleeve.\n\
         # TYPE weft_sleeve_frames_total counter\n",
    );
    for (peer, t) in &d.per_peer {
        for (dir, n) in [("sent", t.sent_frames), ("received", t.received_frames)] {
            out.push_str(&format!(
                "weft_sleeve_frames_total{{peer=\"{peer}\",direction=\"{dir}\"}} {n}\n"
            ));
        }
    }
    out.push_str(
        "# HELP weft_sleeve_bytes_total Ethernet frame bytes sent to and received from each connected peer over the sleeve.\n\
         # TYPE weft_sleeve_bytes_total counter\n",
    );
    for (peer, t) in &d.per_peer {
        for (dir, n) in [("sent", t.sent_bytes), ("received", t.received_bytes)] {
            out.push_str(&format!(
                "weft_sleeve_bytes_total{{peer=\"{peer}\",direction=\"{dir}\"}} {n}\n"
            ));
        }
    }
    out
}

/// Mesh connections refused or closed to protect the router, in Prometheus text.
fn conn_metrics(c: &ConnStats) -> String {
    let mut out = format!(
        "# HELP weft_connections_handshaking Inbound mesh connections still in the handshake.\n\
         # TYPE weft_connections_handshaking gauge\n\
         weft_connections_handshaking {}\n\
         # HELP weft_connections_refused_total Inbound mesh connections closed at accept, by the cap they were over.\n\
         # TYPE weft_connections_refused_total counter\n",
        c.handshaking
    );
    for (reason, n) in &c.refused {
        out.push_str(&format!(
            "weft_connections_refused_total{{reason=\"{reason}\"}} {n}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP weft_connections_closed_total Mesh connections closed because the peer did not read.\n\
         # TYPE weft_connections_closed_total counter\n\
         weft_connections_closed_total{{reason=\"queue_full\"}} {}\n\
         weft_connections_closed_total{{reason=\"write_timeout\"}} {}\n",
        c.not_reading, c.write_timeouts
    ));
    out
}

/// Events the mesh could not hand to a slow service, per channel (nothing without services).
fn channel_metrics(drops: &[(String, u64)]) -> String {
    if drops.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# HELP weft_channel_events_dropped_total Gossip channel events dropped because the local service's queue was full.\n\
         # TYPE weft_channel_events_dropped_total counter\n",
    );
    for (channel, n) in drops {
        out.push_str(&format!(
            "weft_channel_events_dropped_total{{channel=\"{}\"}} {n}\n",
            crate::metrics::escape_label(channel)
        ));
    }
    out
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found\n".into())
}

pub(crate) fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;
    use crate::status::fixtures;

    async fn body(r: Response) -> (StatusCode, String) {
        let code = r.status();
        let bytes = to_bytes(r.into_body(), 1 << 21).await.unwrap_or_default();
        (code, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn render(
        renders: &Arc<Semaphore>,
        format: &str,
        limit: Duration,
    ) -> (StatusCode, String) {
        let Ok(permit) = Arc::clone(renders).try_acquire_owned() else {
            return body(too_many_renders()).await;
        };
        let st = fixtures::status("a-2peer-plain", "h1");
        body(render_report(permit, format.to_owned(), st, limit).await).await
    }

    #[test]
    fn expose_paths_take_ipv4_cidrs_only() {
        let c = path_cidr("10.32.1.254", "24").unwrap();
        assert_eq!(c.to_string(), "10.32.1.254/24");
        for (ip, len) in [
            ("10.32.1.254", "33"),
            ("10.32.1", "24"),
            ("fe80::1", "64"),
            ("10.32.1.1", "x"),
        ] {
            let e = path_cidr(ip, len).unwrap_err();
            assert!(e.starts_with("invalid CIDR"), "{e}");
        }
    }

    #[tokio::test]
    async fn templates_render_off_the_runtime_with_weaves_status_codes() {
        let renders = Arc::new(Semaphore::new(MAX_RENDERS));
        let ok = render(&renders, "{{.Router.Name}}", RENDER_TIME).await;
        assert_eq!(ok, (StatusCode::OK, "00:00:00:00:00:01".to_owned()));
        let (code, msg) = render(&renders, "{{.Router.Name", RENDER_TIME).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{msg}");
        let (code, msg) = render(&renders, "{{len 3}}", RENDER_TIME).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{msg}");
        assert!(
            msg.starts_with("error during template execution: "),
            "{msg}"
        );
        // Every permit is back once the renders are done.
        assert_eq!(renders.available_permits(), MAX_RENDERS);
    }

    #[tokio::test]
    async fn the_time_limit_stops_a_render() {
        let renders = Arc::new(Semaphore::new(1));
        let started = Instant::now();
        let (code, msg) = render(&renders, "{{range 900000}}{{end}}", Duration::ZERO).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{msg}");
        assert!(msg.contains("template exceeded its time budget"), "{msg}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(renders.available_permits(), 1);
    }

    #[tokio::test]
    async fn renders_beyond_the_limit_are_refused_at_once() {
        let renders = Arc::new(Semaphore::new(2));
        let held: Vec<_> = (0..2)
            .filter_map(|_| Arc::clone(&renders).try_acquire_owned().ok())
            .collect();
        assert_eq!(held.len(), 2);
        let (code, msg) = render(&renders, "{{.Router.Name}}", RENDER_TIME).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(msg, "too many report templates being rendered, try again\n");
        assert_eq!(
            too_many_renders().headers().get(header::RETRY_AFTER),
            Some(&header::HeaderValue::from_static("1"))
        );
        drop(held);
        let (code, _) = render(&renders, "{{.Router.Name}}", RENDER_TIME).await;
        assert_eq!(code, StatusCode::OK);
    }
}
