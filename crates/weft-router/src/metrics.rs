//! `GET /metrics`: the router's series in the Prometheus text exposition format (0.0.4),
//! laid out as Weave's Go client writes them: families sorted by name, each with its
//! `# HELP` and `# TYPE` lines, label names sorted, series sorted by label values.
//!
//! Only what weft has: `weave_connection_terminations_total` and `weave_connections`.
//! IPAM, DNS and fastdp flow metrics, and the Go runtime/process collectors, are left out.
//! Written by hand: two families do not justify a registry, and the exact layout (a family
//! with no series is omitted, the paired `encryption` series) is easier to hold this way.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use weft_mesh::mesh::ConnectionStatus;

use crate::status::RouterStatus;

/// The `Content-Type` of the exposition, as the Go client sends it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escape a label value (`\`, `"` and newline), as the exposition format requires.
pub(crate) fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The connection's overlay type, Weave's `type` label: the overlay `name`, else `unknown`.
fn connection_type(c: &ConnectionStatus) -> &str {
    c.overlay
        .as_deref()
        .or_else(|| {
            c.attrs
                .iter()
                .find(|(k, _)| k == "name")
                .map(|(_, v)| v.as_str())
        })
        .unwrap_or("unknown")
}

/// Whether the connection is encrypted: its `encrypted` attribute, or the info text.
fn is_encrypted(c: &ConnectionStatus) -> bool {
    c.attrs.iter().any(|(k, v)| k == "encrypted" && v == "true") || c.info.starts_with("encrypted ")
}

/// The router's metrics as Prometheus text.
pub fn render_metrics(s: &RouterStatus) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP weave_connection_terminations_total Number of peer-to-peer connections terminated.\n\
         # TYPE weave_connection_terminations_total counter\n",
    );
    let _ = writeln!(
        out,
        "weave_connection_terminations_total {}",
        s.mesh.termination_count
    );

    // Every (state, type) with at least one connection gets both encryption series.
    let conns = &s.mesh.connections;
    let kinds: BTreeSet<(&str, &str)> = conns
        .iter()
        .map(|c| (c.state.as_str(), connection_type(c)))
        .collect();
    if !kinds.is_empty() {
        connection_series(&mut out, conns, &kinds);
    }
    if let Some(ipam) = &s.ipam {
        ipam_series(&mut out, ipam);
    }
    out
}

fn connection_series(out: &mut String, conns: &[ConnectionStatus], kinds: &BTreeSet<(&str, &str)>) {
    out.push_str(
        "# HELP weave_connections Number of peer-to-peer connections.\n\
         # TYPE weave_connections gauge\n",
    );
    for (encryption, encrypted) in [("", false), ("yes", true)] {
        for &(state, kind) in kinds {
            let n = conns
                .iter()
                .filter(|c| {
                    c.state == state && connection_type(c) == kind && is_encrypted(c) == encrypted
                })
                .count();
            let _ = writeln!(
                out,
                "weave_connections{{encryption=\"{encryption}\",state=\"{}\",type=\"{}\"}} {n}",
                escape_label(state),
                escape_label(kind)
            );
        }
    }
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`, as Prometheus' Go client prints values:
/// shortest digits, exponent form from 1e6 up (e.g. `1.048576e+06`).
pub fn go_float(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-4) {
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else {
        format!("{v}")
    }
}

/// Weave's IPAM gauges, in the registry's (alphabetical) order.
fn ipam_series(out: &mut String, i: &weft_ipam::allocator::IpamStatus) {
    let unreachable: Vec<_> = i.peers.iter().filter(|p| !p.reachable).collect();
    let unreachable_ips: u64 = unreachable.iter().map(|p| p.ips).sum();
    let percentage = if i.range_num_ips == 0 {
        0.0
    } else {
        unreachable_ips as f64 * 100.0 / i.range_num_ips as f64
    };
    let series: [(&str, &str, &str, String); 6] = [
        (
            "weave_ipam_pending_allocates",
            "Number of pending allocates.",
            "",
            i.pending_allocates.len().to_string(),
        ),
        (
            "weave_ipam_pending_claims",
            "Number of pending claims.",
            "",
            i.pending_claims.len().to_string(),
        ),
        (
            "weave_ipam_unreachable_count",
            "Number of unreachable peers.",
            "",
            unreachable.len().to_string(),
        ),
        (
            "weave_ipam_unreachable_percentage",
            "Percentage of IP addresses owned  by unreachable peers.",
            "",
            go_float(percentage),
        ),
        (
            "weave_ips",
            "Number of IP addresses.",
            "{state=\"local-used\"}",
            go_float(i.active_ips as f64),
        ),
        (
            "weave_max_ips",
            "Size of IP address space used by allocator.",
            "",
            go_float(i.range_num_ips as f64),
        ),
    ];
    for (name, help, labels, value) in series {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{labels} {value}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::fixtures::{self, HOSTS};

    /// The capture's lines for the two router families.
    fn captured(scenario: &str, host: &str) -> String {
        let body = fixtures::body(scenario, host, "metrics");
        let mut out = String::new();
        let mut keep = false;
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or("");
                keep = name == "weave_connections" || name == "weave_connection_terminations_total";
            }
            if keep {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    #[test]
    fn router_families_match_the_captures() {
        for (scenario, host) in HOSTS {
            let want = captured(scenario, host);
            assert!(
                want.contains("weave_connections{"),
                "{scenario} {host}: {want}"
            );
            assert_eq!(
                render_metrics(&fixtures::status(scenario, host)),
                want,
                "{scenario} {host}"
            );
        }
    }

    #[test]
    fn no_connections_means_no_connections_family() {
        let mut s = fixtures::status("a-2peer-plain", "h1");
        s.mesh.connections.clear();
        s.mesh.termination_count = 4;
        assert_eq!(
            render_metrics(&s),
            "# HELP weave_connection_terminations_total Number of peer-to-peer connections terminated.\n\
             # TYPE weave_connection_terminations_total counter\n\
             weave_connection_terminations_total 4\n"
        );
    }

    #[test]
    fn series_sorted_by_label_values() {
        let mut s = fixtures::status("c-3peer-line", "h2");
        s.mesh.connections[1].state = "pending".into();
        s.mesh.connections.push(ConnectionStatus {
            address: "198.18.0.9:6783".into(),
            outbound: true,
            state: "failed".into(),
            info: "dial tcp4 198.18.0.9:6783: connect: connection refused".into(),
            attrs: Vec::new(),
            overlay: None,
            retry_at: None,
        });
        let text = render_metrics(&s);
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("weave_connections{"))
            .collect();
        assert_eq!(
            series,
            [
                "weave_connections{encryption=\"\",state=\"established\",type=\"sleeve\"} 1",
                "weave_connections{encryption=\"\",state=\"failed\",type=\"unknown\"} 1",
                "weave_connections{encryption=\"\",state=\"pending\",type=\"sleeve\"} 1",
                "weave_connections{encryption=\"yes\",state=\"established\",type=\"sleeve\"} 0",
                "weave_connections{encryption=\"yes\",state=\"failed\",type=\"unknown\"} 0",
                "weave_connections{encryption=\"yes\",state=\"pending\",type=\"sleeve\"} 0",
            ]
        );
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
