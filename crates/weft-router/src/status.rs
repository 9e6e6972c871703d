//! The status model and its renderings: Weave's text layout for `/status` and its sub-views,
//! and the JSON of `/report` (Weave's field names, so scripts written for `weave status` and
//! `weave report` keep working). Pure: built from a router snapshot, rendered without I/O.
//!
//! [`RouterStatus`] is the snapshot; [`status_text`], [`status_connections`],
//! [`status_peers`] and [`status_targets`] render Weave's text views byte for byte, and
//! [`report`] / [`report_json`] / [`report_pretty`] build the `/report` document.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use weft_mesh::mesh::{ConnectionStatus, MeshStatus};

/// The peer name Weave prints as the `Via` of the route to ourselves.
const UNKNOWN_PEER_NAME: &str = "00:00:00:00:00:00";

/// The states of a local connection, in the order Weave lists their counts.
const CONNECTION_STATES: [&str; 5] = ["established", "pending", "retrying", "failed", "connecting"];

/// Everything the router's status views show: the mesh snapshot plus the router settings
/// that live outside the mesh core.
#[derive(Debug, Clone)]
pub struct RouterStatus {
    /// The version string shown by `Version:` and `/report`'s `Version`.
    pub version: String,
    /// Whether every component is up (`/report`'s `Ready`; `/status` answers 503 until then).
    pub ready: bool,
    /// The mesh core's snapshot.
    pub mesh: MeshStatus,
    /// Whether a password is set.
    pub encryption: bool,
    /// `--trusted-subnets`, as CIDR strings.
    pub trusted_subnets: Vec<String>,
    /// The lowest mesh protocol version spoken (Weave: 1).
    pub protocol_min: u8,
    /// The highest mesh protocol version spoken (Weave: 2).
    pub protocol_max: u8,
    /// The overlays the router runs (e.g. `["sleeve"]`), for `OverlayDiagnostics`.
    pub overlays: Vec<String>,
    /// A monotonic instant and the wall-clock time it corresponds to, used to show the
    /// `retry_at` of failed targets as wall-clock text. Take both at snapshot time.
    pub now: (Instant, SystemTime),
    /// The IPAM service's snapshot, when IPAM is on.
    pub ipam: Option<weft_ipam::allocator::IpamStatus>,
}

impl RouterStatus {
    /// A snapshot with Weave's defaults for the settings outside the mesh: protocol 1..2,
    /// not encrypted, no trusted subnets, the sleeve overlay, ready, taken now.
    pub fn new(version: impl Into<String>, mesh: MeshStatus) -> Self {
        RouterStatus {
            version: version.into(),
            ready: true,
            mesh,
            encryption: false,
            trusted_subnets: Vec::new(),
            protocol_min: 1,
            protocol_max: 2,
            overlays: vec!["sleeve".to_owned()],
            now: (Instant::now(), SystemTime::now()),
            ipam: None,
        }
    }

    /// The wall-clock time of a monotonic instant, relative to [`RouterStatus::now`].
    fn wall_clock(&self, at: Instant) -> SystemTime {
        let (mono, wall) = self.now;
        if at >= mono {
            wall.checked_add(at - mono).unwrap_or(wall)
        } else {
            wall.checked_sub(mono - at).unwrap_or(wall)
        }
    }

    /// A connection's info text as Weave shows it. Live connections carry the mesh's text,
    /// with the encryption word padded to 11 columns as Weave does (`encrypted   sleeve …`);
    /// a target waiting to be retried gets `, retry: <time>` (or `until: <time>` when it has
    /// no error yet), the time printed like Go's `time.Time.String()`.
    pub fn connection_info(&self, c: &ConnectionStatus) -> String {
        match c.retry_at {
            Some(at) => {
                let when = go_time_string(self.wall_clock(at));
                if c.info.is_empty() {
                    format!("until: {when}")
                } else {
                    format!("{}, retry: {when}", c.info)
                }
            }
            None if is_live(c) => pad_encryption_word(&c.info),
            None => c.info.clone(),
        }
    }
}

/// Whether a connection entry is a live connection (rather than a target not connected).
fn is_live(c: &ConnectionStatus) -> bool {
    c.state == "established" || c.state == "pending"
}

/// Weave prints the encryption word of a live connection with `%-11v `.
fn pad_encryption_word(info: &str) -> String {
    for word in ["encrypted", "unencrypted"] {
        if let Some(rest) = info.strip_prefix(word) {
            if let Some(rest) = rest.strip_prefix(' ') {
                return format!("{word:<11} {}", rest.trim_start_matches(' '));
            }
        }
    }
    info.to_owned()
}

/// Go's `time.Time.String()` for a UTC time, without the monotonic reading:
/// `2026-11-27 16:15:02.123456789 +0000 UTC` (trailing zeros of the fraction dropped).
pub fn go_time_string(t: SystemTime) -> String {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
            if n == 0 {
                (-s, 0)
            } else {
                (-s - 1, 1_000_000_000 - n)
            }
        }
    };
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Weave right-aligns labels so that the colons line up in column 16.
fn label_line(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "{label:>15}: {value}");
}

fn enabled(on: bool) -> &'static str {
    if on {
        "enabled"
    } else {
        "disabled"
    }
}

/// `n a, m b` for the non-zero counts, in the order of `keys`.
fn print_counts(counts: &BTreeMap<&str, usize>, keys: &[&str]) -> String {
    keys.iter()
        .filter_map(|k| counts.get(k).map(|n| format!("{n} {k}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The router section of `GET /status`: the `Version:` line, a blank line, and the
/// `Service: router` block, each line ending in a newline. The IPAM/DNS/proxy/plugin
/// sections, when they exist, follow after a blank line.
pub fn status_text(s: &RouterStatus) -> String {
    let m = &s.mesh;
    let mut out = String::new();
    label_line(
        &mut out,
        "Version",
        &format!("{} (version check update disabled)", s.version),
    );
    out.push('\n');
    label_line(&mut out, "Service", "router");
    let protocol = if s.protocol_min == s.protocol_max {
        format!("weave {}", s.protocol_min)
    } else {
        format!("weave {}..{}", s.protocol_min, s.protocol_max)
    };
    label_line(&mut out, "Protocol", &protocol);
    label_line(&mut out, "Name", &format!("{}({})", m.name, m.nickname));
    label_line(&mut out, "Encryption", enabled(s.encryption));
    label_line(&mut out, "PeerDiscovery", enabled(m.discovery));
    label_line(&mut out, "Targets", &m.targets.len().to_string());

    let mut conn_counts = BTreeMap::new();
    for c in &m.connections {
        *conn_counts.entry(c.state.as_str()).or_insert(0) += 1;
    }
    let mut conns = m.connections.len().to_string();
    let breakdown = print_counts(&conn_counts, &CONNECTION_STATES);
    if !breakdown.is_empty() {
        let _ = write!(conns, " ({breakdown})");
    }
    label_line(&mut out, "Connections", &conns);

    let mut peer_counts = BTreeMap::new();
    for c in m.peers.iter().flat_map(|p| &p.connections) {
        let state = if c.established {
            "established"
        } else {
            "pending"
        };
        *peer_counts.entry(state).or_insert(0) += 1;
    }
    let mut peers = m.peers.len().to_string();
    let breakdown = print_counts(&peer_counts, &["established", "pending"]);
    if !breakdown.is_empty() {
        let _ = write!(peers, " (with {breakdown} connections)");
    }
    label_line(&mut out, "Peers", &peers);
    let trusted = if s.trusted_subnets.is_empty() {
        "none".to_owned()
    } else {
        s.trusted_subnets.join(", ")
    };
    label_line(&mut out, "TrustedSubnets", &trusted);
    if let Some(ipam) = &s.ipam {
        out.push('\n');
        label_line(&mut out, "Service", "ipam");
        label_line(&mut out, "Status", &ipam.state);
        if let Some(waiting) = &ipam.waiting_line {
            label_line(&mut out, "Consensus", waiting);
        }
        label_line(&mut out, "Range", &ipam.range.to_string());
        label_line(&mut out, "DefaultSubnet", &ipam.default_subnet.to_string());
    }
    out
}

/// `weft status ipam`: one line per peer owning space, ours first (Weave's layout: name and
/// nickname padded to 37, the count right-aligned in 8, the share with one decimal, and
/// `(N active)` for us or `- unreachable!`). Empty while there is no ring.
pub fn status_ipam(s: &RouterStatus) -> String {
    let mut out = String::new();
    let Some(ipam) = &s.ipam else {
        return out;
    };
    if ipam.entries.is_empty() {
        return out;
    }
    let total = ipam.range_num_ips.max(1) as f64;
    for p in &ipam.peers {
        let who = format!("{}({})", p.name, p.nickname);
        let info = match p.active {
            Some(n) => format!("({n} active)"),
            None if !p.reachable => "- unreachable!".to_owned(),
            None => String::new(),
        };
        let share = p.ips as f64 * 100.0 / total;
        let _ = writeln!(
            out,
            "{who:<37} {:>8} IPs ({share:04.1}% of total) {info}",
            p.ips
        );
    }
    out
}

fn direction(outbound: bool) -> &'static str {
    if outbound {
        "->"
    } else {
        "<-"
    }
}

/// A connection's attributes as Weave's JSON has them: the overlay `name` plus the others,
/// sorted by key.
fn connection_attrs(c: &ConnectionStatus) -> BTreeMap<String, String> {
    let mut attrs: BTreeMap<String, String> = c.attrs.iter().cloned().collect();
    if let Some(name) = &c.overlay {
        attrs.insert("name".to_owned(), name.clone());
    }
    attrs
}

/// `GET /status/connections`: one line per connection or target not connected:
/// direction, address (padded to 21), state (padded to 11), info, then every attribute but
/// `name` as `key=value`, run together with no separator (Weave's layout).
pub fn status_connections(s: &RouterStatus) -> String {
    let mut out = String::new();
    for c in &s.mesh.connections {
        let _ = write!(
            out,
            "{} {:<21} {:<11} {}",
            direction(c.outbound),
            c.address,
            c.state,
            s.connection_info(c)
        );
        let attrs = connection_attrs(c);
        if !attrs.is_empty() {
            out.push(' ');
            for (k, v) in attrs.iter().filter(|(k, _)| k.as_str() != "name") {
                let _ = write!(out, "{k}={v}");
            }
        }
        out.push('\n');
    }
    out
}

/// `GET /status/peers`: each known peer (ourselves included) as `<name>(<nick>)`, then one
/// indented line per connection of that peer.
pub fn status_peers(s: &RouterStatus) -> String {
    let mut out = String::new();
    for p in &s.mesh.peers {
        let _ = writeln!(out, "{}({})", p.name, p.nickname);
        for c in &p.connections {
            let remote = format!("{}({})", c.name, c.nickname);
            let state = if c.established {
                "established"
            } else {
                "pending"
            };
            let _ = writeln!(
                out,
                "   {} {:<21} {remote:<37} {state}",
                direction(c.outbound),
                c.address
            );
        }
    }
    out
}

/// `GET /status/targets`: the targets as given to `weave connect` / `launch`, one a line.
pub fn status_targets(s: &RouterStatus) -> String {
    s.mesh.targets.iter().map(|t| format!("{t}\n")).collect()
}

/// The `/report` document, with Weave's field names and order. Sections weft does not have
/// yet (IPAM, DNS, proxy, plugin, and the router's data-plane fields `Interface`,
/// `CaptureStats`, `MACs`) are absent rather than faked.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct WeaveReport {
    /// `Ready`: every component is up.
    pub ready: bool,
    /// `Version`.
    pub version: String,
    /// `VersionCheck`.
    pub version_check: VersionCheckReport,
    /// `Router`.
    pub router: RouterSection,
    /// `IPAM`, when IPAM is on.
    #[serde(rename = "IPAM", skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamReport>,
}

/// `IPAM` of `/report`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct IpamReport {
    pub paxos: Option<PaxosReport>,
    pub range: String,
    #[serde(rename = "RangeNumIPs")]
    pub range_num_ips: u64,
    #[serde(rename = "ActiveIPs")]
    pub active_ips: u64,
    pub default_subnet: String,
    pub entries: Option<Vec<IpamEntryReport>>,
    pub pending_claims: Option<Vec<PendingClaimReport>>,
    pub pending_allocates: Option<Vec<String>>,
}

/// `IPAM.Paxos` while the ring is being agreed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct PaxosReport {
    pub elector: bool,
    pub known_nodes: usize,
    pub quorum: u32,
}

/// One ring entry of `IPAM.Entries`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct IpamEntryReport {
    pub token: String,
    pub size: u64,
    pub peer: String,
    pub nickname: String,
    pub is_known_peer: bool,
    pub version: u32,
}

/// One of `IPAM.PendingClaims`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PendingClaimReport {
    #[serde(rename = "Ident")]
    pub ident: String,
    #[serde(rename = "CIDR")]
    pub cidr: CidrReport,
}

/// Go's `address.CIDR`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct CidrReport {
    pub addr: String,
    pub prefix_len: u8,
}

fn ipam_report(i: &weft_ipam::allocator::IpamStatus) -> IpamReport {
    IpamReport {
        paxos: i.paxos.as_ref().map(|p| PaxosReport {
            elector: p.elector,
            known_nodes: p.known_nodes,
            quorum: p.quorum,
        }),
        range: i.range.to_string(),
        range_num_ips: i.range_num_ips,
        active_ips: i.active_ips,
        default_subnet: i.default_subnet.to_string(),
        entries: nil_if_empty(
            i.entries
                .iter()
                .map(|e| IpamEntryReport {
                    token: std::net::Ipv4Addr::from(e.token).to_string(),
                    size: e.size,
                    peer: e.peer.to_string(),
                    nickname: e.nickname.clone(),
                    is_known_peer: e.is_known_peer,
                    version: e.version,
                })
                .collect(),
        ),
        pending_claims: nil_if_empty(
            i.pending_claims
                .iter()
                .map(|(ident, c)| PendingClaimReport {
                    ident: ident.clone(),
                    cidr: CidrReport {
                        addr: std::net::Ipv4Addr::from(c.addr).to_string(),
                        prefix_len: c.prefix,
                    },
                })
                .collect(),
        ),
        pending_allocates: nil_if_empty(i.pending_allocates.clone()),
    }
}

/// `VersionCheck`: weft never checks for new versions, so this reads like Weave with
/// `CHECKPOINT_DISABLE` set.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct VersionCheckReport {
    /// `Enabled`: whether version checks run (never, in weft).
    pub enabled: bool,
    /// `Success`: whether the last check succeeded.
    pub success: bool,
    /// `NewVersion`: the newer version found, if any.
    pub new_version: String,
    /// Go's zero `time.Time` in RFC 3339 when no check is scheduled.
    pub next_check_at: String,
}

impl Default for VersionCheckReport {
    fn default() -> Self {
        VersionCheckReport {
            enabled: false,
            success: false,
            new_version: String::new(),
            next_check_at: "0001-01-01T00:00:00Z".to_owned(),
        }
    }
}

/// `Router` in `/report`. `Option<Vec<_>>` fields are `null` when empty, like Go's nil
/// slices.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RouterSection {
    /// `Protocol`: always `weave`.
    pub protocol: String,
    /// `ProtocolMinVersion`.
    pub protocol_min_version: u8,
    /// `ProtocolMaxVersion`.
    pub protocol_max_version: u8,
    /// `Encryption`: whether a password is set.
    pub encryption: bool,
    /// `PeerDiscovery`.
    pub peer_discovery: bool,
    /// `Name`: the peer name.
    pub name: String,
    /// `NickName`.
    pub nick_name: String,
    /// `Port`: the mesh TCP port.
    pub port: u16,
    /// `Peers`: every known peer, ourselves included.
    pub peers: Option<Vec<PeerReport>>,
    /// `UnicastRoutes`: destination and next hop.
    pub unicast_routes: Option<Vec<UnicastRouteReport>>,
    /// `BroadcastRoutes`: the neighbours a broadcast from each source goes to.
    pub broadcast_routes: Option<Vec<BroadcastRouteReport>>,
    /// `Connections`.
    pub connections: Option<Vec<ConnectionReport>>,
    /// `TerminationCount`: connections terminated so far.
    pub termination_count: u64,
    /// `Targets`: the addresses given to `connect`/`launch`.
    pub targets: Option<Vec<String>>,
    /// Overlay name to its diagnostics (`null` for sleeve, as Weave's).
    pub overlay_diagnostics: BTreeMap<String, serde_json::Value>,
    /// `[]` (never `null`) when there are none, as Weave's.
    pub trusted_subnets: Vec<String>,
}

/// One peer in `Router.Peers`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct PeerReport {
    /// `Name`: the peer name.
    pub name: String,
    /// `NickName`.
    pub nick_name: String,
    /// `UID`: the random id chosen at start.
    #[serde(rename = "UID")]
    pub uid: u64,
    /// `ShortID`.
    #[serde(rename = "ShortID")]
    pub short_id: u16,
    /// `Version`.
    pub version: u64,
    /// `Connections`.
    pub connections: Option<Vec<PeerConnectionReport>>,
}

/// One connection of a peer, as that peer gossips it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct PeerConnectionReport {
    /// `Name`: the peer name.
    pub name: String,
    /// `NickName`.
    pub nick_name: String,
    /// `Address`: the remote TCP address.
    pub address: String,
    /// `Outbound`: whether this side dialled.
    pub outbound: bool,
    /// `Established`.
    pub established: bool,
}

/// One entry of `Router.UnicastRoutes`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct UnicastRouteReport {
    /// `Dest`.
    pub dest: String,
    /// `Via`.
    pub via: String,
}

/// One entry of `Router.BroadcastRoutes`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct BroadcastRouteReport {
    /// `Source`.
    pub source: String,
    /// `Via`.
    pub via: Option<Vec<String>>,
}

/// One entry of `Router.Connections`: a local connection or a target not connected.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectionReport {
    /// `Address`: the remote TCP address.
    pub address: String,
    /// `Outbound`: whether this side dialled.
    pub outbound: bool,
    /// `State`: established, pending, retrying, failed or connecting.
    pub state: String,
    /// `Info`: Weave's description of the connection or the last error.
    pub info: String,
    /// Overlay attributes, typed as Weave's (`mtu` a number, `encrypted` a bool); `null`
    /// for targets.
    pub attrs: Option<BTreeMap<String, serde_json::Value>>,
}

/// An attribute value as Weave types it: integers and booleans are JSON numbers and
/// booleans, the rest strings.
fn attr_value(v: &str) -> serde_json::Value {
    match v {
        "true" => serde_json::Value::Bool(true),
        "false" => serde_json::Value::Bool(false),
        _ => {
            if let Ok(n) = v.parse::<i64>() {
                n.into()
            } else if let Ok(n) = v.parse::<u64>() {
                n.into()
            } else {
                v.into()
            }
        }
    }
}

fn nil_if_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

/// Build the `/report` document.
pub fn report(s: &RouterStatus) -> WeaveReport {
    let m = &s.mesh;
    let peers = m
        .peers
        .iter()
        .map(|p| PeerReport {
            name: p.name.to_string(),
            nick_name: p.nickname.clone(),
            uid: p.uid,
            short_id: p.short_id,
            version: p.version,
            connections: nil_if_empty(
                p.connections
                    .iter()
                    .map(|c| PeerConnectionReport {
                        name: c.name.to_string(),
                        nick_name: c.nickname.clone(),
                        address: c.address.clone(),
                        outbound: c.outbound,
                        established: c.established,
                    })
                    .collect(),
            ),
        })
        .collect();
    // The mesh's table leaves ourselves out; Weave lists us with the unknown peer as `Via`.
    let mut unicast = Vec::with_capacity(m.unicast_routes.len() + 1);
    if !m.unicast_routes.iter().any(|(dest, _)| *dest == m.name) {
        unicast.push(UnicastRouteReport {
            dest: m.name.to_string(),
            via: UNKNOWN_PEER_NAME.to_owned(),
        });
    }
    unicast.extend(
        m.unicast_routes
            .iter()
            .map(|(dest, via)| UnicastRouteReport {
                dest: dest.to_string(),
                via: via.to_string(),
            }),
    );
    let broadcast = m
        .broadcast_routes
        .iter()
        .map(|(src, via)| BroadcastRouteReport {
            source: src.to_string(),
            via: nil_if_empty(via.iter().map(ToString::to_string).collect()),
        })
        .collect();
    let connections = m
        .connections
        .iter()
        .map(|c| {
            let attrs: BTreeMap<String, serde_json::Value> = connection_attrs(c)
                .into_iter()
                .map(|(k, v)| {
                    let v = attr_value(&v);
                    (k, v)
                })
                .collect();
            ConnectionReport {
                address: c.address.clone(),
                outbound: c.outbound,
                state: c.state.clone(),
                info: s.connection_info(c),
                attrs: if attrs.is_empty() { None } else { Some(attrs) },
            }
        })
        .collect();
    WeaveReport {
        ready: s.ready,
        version: s.version.clone(),
        version_check: VersionCheckReport::default(),
        router: RouterSection {
            protocol: "weave".to_owned(),
            protocol_min_version: s.protocol_min,
            protocol_max_version: s.protocol_max,
            encryption: s.encryption,
            peer_discovery: m.discovery,
            name: m.name.to_string(),
            nick_name: m.nickname.clone(),
            port: m.port,
            peers: nil_if_empty(peers),
            unicast_routes: nil_if_empty(unicast),
            broadcast_routes: nil_if_empty(broadcast),
            connections: nil_if_empty(connections),
            termination_count: m.termination_count,
            targets: nil_if_empty(m.targets.clone()),
            overlay_diagnostics: s
                .overlays
                .iter()
                .map(|o| (o.clone(), serde_json::Value::Null))
                .collect(),
            trusted_subnets: s.trusted_subnets.clone(),
        },
        ipam: s.ipam.as_ref().map(ipam_report),
    }
}

/// The `/report` document as a JSON value (what `?format=` templates run over). With
/// serde_json's `preserve_order` (enabled by this crate) objects keep Weave's field order.
pub fn report_json(s: &RouterStatus) -> serde_json::Value {
    serde_json::to_value(report(s)).unwrap_or(serde_json::Value::Null)
}

/// The body of `GET /report` with `Accept: application/json`: pretty JSON with Go's
/// 4-space indentation and no trailing newline (Go's `json.MarshalIndent`).
pub fn report_pretty(s: &RouterStatus) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if report(s).serialize(&mut ser).is_err() {
        return "{}".to_owned();
    }
    String::from_utf8(buf).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The first-cut types below are still used by `lib.rs` and `api.rs`; they go once the
// callers move to `RouterStatus`.

/// What `/report` returned before [`WeaveReport`] (kept for the current callers).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    /// `Ready`: every component is up.
    pub ready: bool,
    /// `Version`.
    pub version: String,
    /// `Router`.
    pub router: RouterReport,
}

/// The router part of [`Report`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RouterReport {
    /// `Name`: the peer name.
    pub name: String,
    /// `NickName`.
    pub nick_name: String,
}

impl Report {
    /// The first-cut body of `GET /status` (Version, Service and Name only).
    pub fn status_text(&self) -> String {
        let mut out = String::new();
        label_line(
            &mut out,
            "Version",
            &format!("{} (version check update disabled)", self.version),
        );
        out.push('\n');
        label_line(&mut out, "Service", "router");
        label_line(
            &mut out,
            "Name",
            &format!("{}({})", self.router.name, self.router.nick_name),
        );
        out
    }
}

#[cfg(test)]
#[path = "status_ipam_tests.rs"]
mod ipam_tests;

/// Snapshots rebuilt from the Weave 2.8.1 captures in `shared/conformance`, shared by the
/// tests of this module, `template` and `metrics`.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use serde_json::Value;
    use weft_mesh::mesh::{ConnectionStatus, MeshStatus, PeerConnectionStatus, PeerStatus};
    use weft_mesh::PeerName;

    use super::RouterStatus;

    /// Where the captures live (CI has them next to the workspace).
    pub const CONFORMANCE: &str =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance/");

    /// The body of a captured response: the file without the `\n[HTTP …]\n` trailer the
    /// capture script appends.
    pub fn body(scenario: &str, host: &str, view: &str) -> String {
        let path = format!("{CONFORMANCE}{scenario}.status/{host}.{view}.txt");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("conformance capture {path} is missing ({e}); these tests need shared/conformance next to the workspace")
        });
        let cut = text
            .rfind("\n[HTTP ")
            .unwrap_or_else(|| panic!("{path}: no [HTTP …] trailer"));
        text[..cut].to_owned()
    }

    /// The captured `/report` JSON.
    pub fn report(scenario: &str, host: &str) -> Value {
        let text = body(scenario, host, "report");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{scenario}/{host} report: {e}"))
    }

    fn name(v: &Value) -> PeerName {
        let s = v.as_str().expect("peer name string");
        let mut b = [0u8; 6];
        for (i, part) in s.split(':').enumerate() {
            b[i] = u8::from_str_radix(part, 16).expect("hex octet");
        }
        PeerName::from_bytes(b)
    }

    fn string(v: &Value) -> String {
        v.as_str().expect("string").to_owned()
    }

    fn list(v: &Value) -> Vec<Value> {
        v.as_array().cloned().unwrap_or_default()
    }

    /// The snapshot weft's mesh would give for a capture: built from the captured report,
    /// with the info text as weft-mesh writes it (one space after the encryption word) and
    /// without the route to ourselves (the mesh's table leaves it out).
    pub fn status(scenario: &str, host: &str) -> RouterStatus {
        let full = report(scenario, host);
        let r = &full["Router"];
        let peers = list(&r["Peers"])
            .iter()
            .map(|p| PeerStatus {
                name: name(&p["Name"]),
                nickname: string(&p["NickName"]),
                uid: p["UID"].as_u64().expect("UID"),
                short_id: p["ShortID"].as_u64().expect("ShortID") as u16,
                version: p["Version"].as_u64().expect("Version"),
                connections: list(&p["Connections"])
                    .iter()
                    .map(|c| PeerConnectionStatus {
                        name: name(&c["Name"]),
                        nickname: string(&c["NickName"]),
                        address: string(&c["Address"]),
                        outbound: c["Outbound"].as_bool().expect("Outbound"),
                        established: c["Established"].as_bool().expect("Established"),
                    })
                    .collect(),
            })
            .collect();
        let connections = list(&r["Connections"])
            .iter()
            .map(|c| {
                let attrs = c["Attrs"].as_object().cloned().unwrap_or_default();
                let overlay = attrs.get("name").map(string);
                ConnectionStatus {
                    address: string(&c["Address"]),
                    outbound: c["Outbound"].as_bool().expect("Outbound"),
                    state: string(&c["State"]),
                    info: string(&c["Info"]).replace("encrypted   ", "encrypted "),
                    attrs: attrs
                        .iter()
                        .filter(|(k, _)| k.as_str() != "name")
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect(),
                    overlay,
                    retry_at: None,
                }
            })
            .collect();
        let unicast_routes = list(&r["UnicastRoutes"])
            .iter()
            .filter(|u| u["Via"] != "00:00:00:00:00:00")
            .map(|u| (name(&u["Dest"]), name(&u["Via"])))
            .collect();
        let broadcast_routes = list(&r["BroadcastRoutes"])
            .iter()
            .map(|b| {
                (
                    name(&b["Source"]),
                    list(&b["Via"]).iter().map(name).collect(),
                )
            })
            .collect();
        let mesh = MeshStatus {
            name: name(&r["Name"]),
            nickname: string(&r["NickName"]),
            port: r["Port"].as_u64().expect("Port") as u16,
            discovery: r["PeerDiscovery"].as_bool().expect("PeerDiscovery"),
            targets: list(&r["Targets"]).iter().map(string).collect(),
            connections,
            targets_status: Vec::new(),
            peers,
            unicast_routes,
            broadcast_routes,
            termination_count: r["TerminationCount"].as_u64().expect("TerminationCount"),
        };
        RouterStatus {
            version: string(&full["Version"]),
            ready: full["Ready"].as_bool().expect("Ready"),
            mesh,
            encryption: r["Encryption"].as_bool().expect("Encryption"),
            trusted_subnets: list(&r["TrustedSubnets"]).iter().map(string).collect(),
            protocol_min: 1,
            protocol_max: 2,
            overlays: vec!["sleeve".to_owned()],
            now: (
                Instant::now(),
                UNIX_EPOCH + Duration::from_millis(1_795_796_100_000),
            ),
            ipam: None,
        }
    }

    /// The five hosts the tests replay.
    pub const HOSTS: [(&str, &str); 5] = [
        ("c-3peer-line", "h1"),
        ("c-3peer-line", "h2"),
        ("c-3peer-line", "h3"),
        ("a-2peer-plain", "h1"),
        ("b-2peer-encrypted", "h1"),
    ];

    /// A snapshot time for tests that do not use the captures.
    pub fn wall(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::Value;
    use weft_mesh::mesh::ConnectionStatus;

    use super::fixtures::{self, HOSTS};
    use super::*;

    /// Lines sorted: Weave lists connections in Go map order, which changes between calls.
    fn sorted_lines(s: &str) -> Vec<String> {
        let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
        v.sort();
        v
    }

    /// The peers view as sorted blocks (a peer line and its connection lines, sorted).
    fn peer_blocks(s: &str) -> Vec<Vec<String>> {
        let mut blocks: Vec<Vec<String>> = Vec::new();
        for l in s.lines() {
            if l.starts_with(' ') {
                blocks
                    .last_mut()
                    .expect("peer line first")
                    .push(l.to_owned());
            } else {
                blocks.push(vec![l.to_owned()]);
            }
        }
        for b in &mut blocks {
            b[1..].sort();
        }
        blocks.sort();
        blocks
    }

    #[test]
    fn status_text_matches_the_router_section_of_the_captures() {
        for (scenario, host) in HOSTS {
            let want = fixtures::body(scenario, host, "status");
            let router = &want[..want
                .find("\n\n        Service: ipam")
                .expect("ipam section")
                + 1];
            assert_eq!(
                status_text(&fixtures::status(scenario, host)),
                router,
                "{scenario} {host}"
            );
        }
    }

    #[test]
    fn status_text_layout_for_c_h2() {
        let want = "        Version: 2.8.1+rw-nodummy (version check update disabled)\n\
                    \n        Service: router\n       Protocol: weave 1..2\n\
                    \x20          Name: 00:00:00:00:00:02(rw-h2)\n     Encryption: disabled\n\
                    \x20 PeerDiscovery: disabled\n        Targets: 0\n\
                    \x20   Connections: 2 (2 established)\n\
                    \x20         Peers: 3 (with 4 established connections)\n\
                    \x20TrustedSubnets: none\n";
        assert_eq!(status_text(&fixtures::status("c-3peer-line", "h2")), want);
    }

    #[test]
    fn sub_views_match_the_captures() {
        for (scenario, host) in HOSTS {
            let s = fixtures::status(scenario, host);
            let conns = fixtures::body(scenario, host, "status-connections");
            assert_eq!(
                sorted_lines(&status_connections(&s)),
                sorted_lines(&conns),
                "{scenario} {host}"
            );
            let peers = fixtures::body(scenario, host, "status-peers");
            assert_eq!(
                peer_blocks(&status_peers(&s)),
                peer_blocks(&peers),
                "{scenario} {host}"
            );
            let targets = fixtures::body(scenario, host, "status-targets");
            assert_eq!(status_targets(&s), targets, "{scenario} {host}");
        }
    }

    #[test]
    fn single_connection_views_are_byte_exact() {
        let s = fixtures::status("b-2peer-encrypted", "h1");
        assert_eq!(
            status_connections(&s),
            "<- 198.18.0.2:40287      established encrypted   sleeve 00:00:00:00:00:02(rw-h2) encrypted=truemtu=1414\n"
        );
        let s = fixtures::status("c-3peer-line", "h1");
        assert_eq!(
            status_connections(&s),
            "-> 198.18.0.2:6783       established sleeve 00:00:00:00:00:02(rw-h2) mtu=1438\n"
        );
        assert_eq!(status_targets(&s), "198.18.0.2\n");
    }

    /// Sort the elements of an array (by their JSON text), recursively for `Connections`.
    fn normalise(v: &Value) -> Value {
        match v {
            Value::Array(a) => {
                let mut items: Vec<Value> = a.iter().map(normalise).collect();
                items.sort_by_key(|i| i.to_string());
                Value::Array(items)
            }
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), normalise(v))).collect())
            }
            other => other.clone(),
        }
    }

    #[test]
    fn report_router_fields_match_the_captures() {
        const FIELDS: [&str; 16] = [
            "Protocol",
            "ProtocolMinVersion",
            "ProtocolMaxVersion",
            "Encryption",
            "PeerDiscovery",
            "Name",
            "NickName",
            "Port",
            "Peers",
            "UnicastRoutes",
            "BroadcastRoutes",
            "Connections",
            "TerminationCount",
            "Targets",
            "OverlayDiagnostics",
            "TrustedSubnets",
        ];
        for (scenario, host) in HOSTS {
            let want = fixtures::report(scenario, host);
            let got = report_json(&fixtures::status(scenario, host));
            for top in ["Ready", "Version", "VersionCheck"] {
                assert_eq!(got[top], want[top], "{scenario} {host} {top}");
            }
            let keys: Vec<&String> = got["Router"].as_object().expect("Router").keys().collect();
            assert_eq!(keys, FIELDS, "field order");
            for f in FIELDS {
                assert_eq!(
                    normalise(&got["Router"][f]),
                    normalise(&want["Router"][f]),
                    "{scenario} {host} Router.{f}"
                );
            }
            assert!(got.get("IPAM").is_none() && got.get("DNS").is_none());
        }
    }

    #[test]
    fn report_pretty_uses_go_indentation() {
        let text = report_pretty(&fixtures::status("c-3peer-line", "h2"));
        let want = fixtures::body("c-3peer-line", "h2", "report");
        // Everything up to the first data-plane field is identical (Connections order aside,
        // which is Go map order; c-h2's two connections are listed h3 first there).
        let head = &want[..want.find("        \"Connections\"").expect("Connections")];
        assert!(text.starts_with(head), "{text}");
        assert!(text.ends_with("\n        \"TrustedSubnets\": []\n    }\n}"));
        assert!(text.contains("        \"Targets\": null,\n        \"OverlayDiagnostics\": {\n            \"sleeve\": null\n        },\n        \"TrustedSubnets\": []\n"));
    }

    fn target(state: &str, info: &str, retry_at: Option<Instant>) -> ConnectionStatus {
        ConnectionStatus {
            address: "198.18.0.9:6783".into(),
            outbound: true,
            state: state.into(),
            info: info.into(),
            attrs: Vec::new(),
            overlay: None,
            retry_at,
        }
    }

    #[test]
    fn failed_and_connecting_targets() {
        let mut s = fixtures::status("c-3peer-line", "h1");
        let mono = Instant::now();
        s.now = (
            mono,
            fixtures::wall(1_795_796_100) + Duration::from_millis(120),
        );
        let retry = mono + Duration::from_millis(2_003);
        s.mesh.connections.push(target(
            "failed",
            "dial tcp4 198.18.0.9:6783: connect: connection refused",
            Some(retry),
        ));
        s.mesh.connections.push(target("connecting", "", None));
        s.mesh.targets.push("198.18.0.9".into());
        let text = status_text(&s);
        assert!(text.contains("        Targets: 2\n"), "{text}");
        assert!(
            text.contains("    Connections: 3 (1 established, 1 failed, 1 connecting)\n"),
            "{text}"
        );
        let conns = status_connections(&s);
        assert!(conns.contains(
            "-> 198.18.0.9:6783       failed      dial tcp4 198.18.0.9:6783: connect: connection refused, retry: 2026-11-27 16:15:02.123 +0000 UTC\n"
        ), "{conns}");
        assert!(
            conns.contains("-> 198.18.0.9:6783       connecting  \n"),
            "{conns}"
        );
        let r = report_json(&s);
        let c = &r["Router"]["Connections"][1];
        assert_eq!(c["State"], "failed");
        assert_eq!(c["Attrs"], Value::Null);
        assert!(c["Info"]
            .as_str()
            .expect("Info")
            .ends_with(", retry: 2026-11-27 16:15:02.123 +0000 UTC"));
    }

    #[test]
    fn waiting_target_without_error_reads_until() {
        let mut s = fixtures::status("a-2peer-plain", "h1");
        let mono = Instant::now();
        s.now = (mono, fixtures::wall(0));
        s.mesh.connections = vec![target("retrying", "", Some(mono + Duration::from_secs(61)))];
        assert_eq!(
            status_connections(&s),
            "-> 198.18.0.9:6783       retrying    until: 1970-01-01 00:01:01 +0000 UTC\n"
        );
    }

    #[test]
    fn header_variants() {
        let mut s = fixtures::status("a-2peer-plain", "h1");
        s.protocol_min = 2;
        s.trusted_subnets = vec!["10.0.0.0/8".into(), "192.168.0.0/16".into()];
        s.mesh.connections.clear();
        for p in &mut s.mesh.peers {
            p.connections.clear();
        }
        s.mesh.peers.truncate(1);
        let text = status_text(&s);
        assert!(text.contains("       Protocol: weave 2\n"));
        assert!(text.contains("    Connections: 0\n"));
        assert!(text.contains("          Peers: 1\n"));
        assert!(text.contains(" TrustedSubnets: 10.0.0.0/8, 192.168.0.0/16\n"));
        let r = report_json(&s);
        assert_eq!(r["Router"]["Connections"], Value::Null);
        assert_eq!(r["Router"]["Peers"][0]["Connections"], Value::Null);
        assert_eq!(r["Router"]["TrustedSubnets"][1], "192.168.0.0/16");
    }

    #[test]
    fn pending_connections_are_counted() {
        let mut s = fixtures::status("c-3peer-line", "h2");
        s.mesh.connections[0].state = "pending".into();
        s.mesh.peers[0].connections[0].established = false;
        let text = status_text(&s);
        assert!(
            text.contains("    Connections: 2 (1 established, 1 pending)\n"),
            "{text}"
        );
        assert!(
            text.contains("          Peers: 3 (with 3 established, 1 pending connections)\n"),
            "{text}"
        );
        assert!(status_peers(&s).contains("              pending\n"));
    }

    #[test]
    fn go_time_strings() {
        assert_eq!(
            go_time_string(fixtures::wall(0)),
            "1970-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(
            go_time_string(fixtures::wall(951_782_400) + Duration::from_nanos(5_000)),
            "2000-02-29 00:00:00.000005 +0000 UTC"
        );
        assert_eq!(
            go_time_string(fixtures::wall(4_102_444_799)),
            "2099-12-31 23:59:59 +0000 UTC"
        );
    }

    #[test]
    fn encryption_word_padding_is_idempotent() {
        assert_eq!(
            pad_encryption_word("encrypted sleeve a(b)"),
            "encrypted   sleeve a(b)"
        );
        assert_eq!(
            pad_encryption_word("encrypted   sleeve a(b)"),
            "encrypted   sleeve a(b)"
        );
        assert_eq!(
            pad_encryption_word("unencrypted sleeve a(b)"),
            "unencrypted sleeve a(b)"
        );
        assert_eq!(pad_encryption_word("sleeve a(b)"), "sleeve a(b)");
    }

    #[test]
    fn legacy_report_still_renders() {
        let r = Report {
            ready: true,
            version: "0.1.0".into(),
            router: RouterReport {
                name: "8a:3e:3e:3e:3e:3e".into(),
                nick_name: "nicknamington".into(),
            },
        };
        assert!(r
            .status_text()
            .ends_with("           Name: 8a:3e:3e:3e:3e:3e(nicknamington)\n"));
    }
}
