//! The IPAM views against capture (d) of a real Weave 2.8.1 router: the `ipam` status
//! sub-view and `/report`'s `IPAM`, rendered from a snapshot rebuilt from the captured report.

use std::collections::BTreeMap;

use serde_json::Value;
use weft_ipam::addr::Cidr;
use weft_ipam::allocator::{EntryStatus, IpamStatus, PeerShare};
use weft_mesh::PeerName;

use super::fixtures;
use super::*;

const SCENARIO: &str = "d-ipam-3peer";
const STEPS: [&str; 9] = [
    "1-consensus",
    "2-allocate",
    "3-claim",
    "4-release",
    "5a-h3-killed",
    "5b-rmpeer",
    "5c-after-a4",
    "6-h1-restarted",
    "7-end",
];

fn exists(host: &str, view: &str) -> bool {
    std::path::Path::new(&format!(
        "{}{SCENARIO}.status/{host}.{view}.txt",
        fixtures::CONFORMANCE
    ))
    .exists()
}

/// The snapshot the allocator would give for this captured report.
fn ipam_status(report: &Value) -> IpamStatus {
    let ipam = &report["IPAM"];
    let me: PeerName = report["Router"]["Name"].as_str().unwrap().parse().unwrap();
    let entries: Vec<EntryStatus> = ipam["Entries"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|e| EntryStatus {
            token: u32::from(
                e["Token"]
                    .as_str()
                    .unwrap()
                    .parse::<std::net::Ipv4Addr>()
                    .unwrap(),
            ),
            size: e["Size"].as_u64().unwrap(),
            peer: e["Peer"].as_str().unwrap().parse().unwrap(),
            nickname: e["Nickname"].as_str().unwrap().to_owned(),
            is_known_peer: e["IsKnownPeer"].as_bool().unwrap(),
            version: e["Version"].as_u64().unwrap() as u32,
            free: 0,
        })
        .collect();
    let mut shares: BTreeMap<PeerName, PeerShare> = BTreeMap::new();
    for e in &entries {
        let s = shares.entry(e.peer).or_insert(PeerShare {
            name: e.peer,
            nickname: e.nickname.clone(),
            ips: 0,
            reachable: e.is_known_peer || e.peer == me,
            active: (e.peer == me).then(|| ipam["ActiveIPs"].as_u64().unwrap()),
        });
        s.ips += e.size;
    }
    let mut peers: Vec<PeerShare> = shares.remove(&me).into_iter().collect();
    peers.extend(shares.into_values());
    let cidr = |v: &Value| v.as_str().unwrap().parse::<Cidr>().unwrap();
    IpamStatus {
        state: "ready".into(),
        waiting_line: None,
        paxos: None,
        range: cidr(&ipam["Range"]),
        range_num_ips: ipam["RangeNumIPs"].as_u64().unwrap(),
        active_ips: ipam["ActiveIPs"].as_u64().unwrap(),
        default_subnet: cidr(&ipam["DefaultSubnet"]),
        entries,
        pending_claims: Vec::new(),
        pending_allocates: Vec::new(),
        peers,
    }
}

#[test]
fn ipam_views_match_the_captures() {
    let mut checked = 0;
    for step in STEPS {
        for h in ["h1", "h2", "h3"] {
            let host = format!("{step}.{h}");
            if !exists(&host, "report") || !exists(&host, "status-ipam") {
                continue;
            }
            let want_report = fixtures::report(SCENARIO, &host);
            if want_report["IPAM"]["Entries"].is_null() {
                continue;
            }
            let mut st = fixtures::status("c-3peer-line", "h1");
            st.ipam = Some(ipam_status(&want_report));
            // /status/ipam: ours first, the others in Go's map order (compared as a set).
            let got = status_ipam(&st);
            let want = fixtures::body(SCENARIO, &host, "status-ipam");
            let (mut g, mut w): (Vec<&str>, Vec<&str>) =
                (got.lines().collect(), want.lines().collect());
            w.retain(|l| !l.is_empty());
            assert_eq!(g.first(), w.first(), "{host}: our line");
            g.sort_unstable();
            w.sort_unstable();
            assert_eq!(g, w, "{host} status ipam");
            // /report IPAM.
            let got = report_json(&st);
            assert_eq!(got["IPAM"], want_report["IPAM"], "{host} report IPAM");
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} snapshots checked");
}
