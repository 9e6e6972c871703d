//! End-to-end: weft's nftables tables. Subnet isolation and anti-spoofing on the bridge,
//! `weft expose`/`hide` (and the repair of a flushed ruleset), `weft reset`.

mod common;

use std::time::Duration;

use common::{lab, on_host, weft, Run};
use weft_lab::{wait_until, LabGuard, Topology};

/// Runs `argv` in container `name` of host 1.
fn in_c(lab: &LabGuard, name: &str, argv: &[&str]) -> Run {
    lab.container_command(1, name, argv)
        .expect("container name")
        .output()
        .expect("run ip netns exec")
        .into()
}

/// Does one ping from container `from` (with `-I src` when given) reach `to`?
fn ping(lab: &LabGuard, from: &str, src: Option<&str>, to: &str) -> bool {
    let mut argv = vec!["ping", "-c", "1", "-W", "1"];
    if let Some(s) = src {
        argv.extend(["-I", s]);
    }
    argv.push(to);
    in_c(lab, from, &argv).code == 0
}

fn wait_ping(lab: &LabGuard, from: &str, to: &str) {
    wait_until(
        &format!("{from} to reach {to}"),
        Duration::from_secs(20),
        || {
            if ping(lab, from, None, to) {
                Ok(())
            } else {
                Err("no reply".into())
            }
        },
    )
    .unwrap();
}

/// The packets counted by the rule of `nft list chain <family> weft <chain>` whose line
/// contains `needle`.
fn rule_packets(lab: &LabGuard, family: &str, chain: &str, needle: &str) -> u64 {
    let out = on_host(lab, 1, &["nft", "list", "chain", family, "weft", chain]).ok();
    let line = out
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no rule with {needle:?} in\n{out}"));
    let after = line
        .split("counter packets ")
        .nth(1)
        .unwrap_or_else(|| panic!("no counter in {line}"));
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad counter in {line}"))
}

/// ICMP echo requests container `name` has received (`Icmp: InEchos` of /proc/net/snmp).
fn in_echos(lab: &LabGuard, name: &str) -> u64 {
    let snmp = in_c(lab, name, &["cat", "/proc/net/snmp"]).ok();
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp: "));
    let (Some(names), Some(values)) = (icmp.next(), icmp.next()) else {
        panic!("no Icmp lines in\n{snmp}");
    };
    let i = names
        .split_whitespace()
        .position(|n| n == "InEchos")
        .expect("InEchos column");
    values
        .split_whitespace()
        .nth(i)
        .and_then(|v| v.parse().ok())
        .expect("InEchos value")
}

/// A permanent neighbour entry in `name` for `ip` at container `of`'s MAC, so no ARP is
/// needed and only the IPv4 rules decide.
fn static_neigh(lab: &LabGuard, name: &str, ip: &str, of: &str) {
    let mac = mac_of(lab, of);
    in_c(
        lab,
        name,
        &[
            "ip",
            "neigh",
            "replace",
            ip,
            "lladdr",
            &mac,
            "dev",
            "ethwe",
            "nud",
            "permanent",
        ],
    )
    .ok();
}

fn attach(lab: &LabGuard, cidr: &str, name: &str) -> String {
    let ns = lab.add_container(1, name).unwrap();
    let out = weft(lab, 1, &["attach", cidr, &format!("netns:{ns}")]).ok();
    assert_eq!(out.trim(), cidr.split('/').next().unwrap());
    ns
}

fn mac_of(lab: &LabGuard, name: &str) -> String {
    in_c(lab, name, &["cat", "/sys/class/net/ethwe/address"])
        .ok()
        .trim()
        .to_owned()
}

#[test]
fn subnets_are_isolated_and_spoofed_sources_dropped() {
    let lab = lab("nfiso", 1, Topology::Full);
    weft(&lab, 1, &["launch"]).ok();
    attach(&lab, "10.32.1.2/24", "c1");
    attach(&lab, "10.32.2.2/24", "c2");
    attach(&lab, "10.32.1.3/24", "c3");
    let c4 = attach(&lab, "10.32.2.3/24", "c4");
    // The same subnet works.
    wait_ping(&lab, "c1", "10.32.1.3");
    wait_ping(&lab, "c2", "10.32.2.3");
    // c1 and c2 route the whole range on ethwe themselves, so only the bridge's filter
    // stands between them: without it they would reach each other.
    for c in ["c1", "c2"] {
        in_c(
            &lab,
            c,
            &["ip", "route", "add", "10.32.0.0/12", "dev", "ethwe"],
        )
        .ok();
    }
    let outside = "IPv4 source outside its subnets";
    let before = rule_packets(&lab, "bridge", "forward", outside);
    assert!(!ping(&lab, "c1", None, "10.32.2.2"), "c1 reached c2");
    assert!(!ping(&lab, "c2", None, "10.32.1.2"), "c2 reached c1");
    // Without ARP in the way (static neighbours both ways), the IPv4 rule alone stops the
    // echo requests before c2 sees them.
    static_neigh(&lab, "c1", "10.32.2.2", "c2");
    static_neigh(&lab, "c2", "10.32.1.2", "c1");
    let echos = in_echos(&lab, "c2");
    assert!(!ping(&lab, "c1", None, "10.32.2.2"), "c1 reached c2");
    assert_eq!(
        in_echos(&lab, "c2"),
        echos,
        "c2 received c1's echo requests"
    );
    assert!(
        rule_packets(&lab, "bridge", "forward", outside) > before,
        "the subnet rule counted c1's packets"
    );
    // c1 gives itself an address in c2's subnet: its port was not given it, so the packets
    // are dropped as they enter the bridge (c2 never sees them, counted on the rule).
    let not_own = "IPv4 source not its own";
    let before = rule_packets(&lab, "bridge", "prerouting", not_own);
    in_c(
        &lab,
        "c1",
        &["ip", "addr", "add", "10.32.2.9/24", "dev", "ethwe", "nodad"],
    )
    .ok();
    assert!(!ping(&lab, "c1", Some("10.32.2.9"), "10.32.2.2"));
    // c1 takes c4's address (spoofing another container): dropped too.
    in_c(
        &lab,
        "c1",
        &["ip", "addr", "add", "10.32.2.3/24", "dev", "ethwe", "nodad"],
    )
    .ok();
    assert!(!ping(&lab, "c1", Some("10.32.2.3"), "10.32.2.2"));
    assert_eq!(
        in_echos(&lab, "c2"),
        echos,
        "c2 received spoofed echo requests"
    );
    let dropped = rule_packets(&lab, "bridge", "prerouting", not_own) - before;
    assert!(dropped >= 2, "spoofed packets dropped: {dropped}");
    // c4, the real owner, still reaches c2, and c1 still reaches c3 from its own address.
    let echos = in_echos(&lab, "c2");
    wait_ping(&lab, "c4", "10.32.2.2");
    assert!(in_echos(&lab, "c2") > echos, "the echo counter works");
    assert!(ping(&lab, "c1", Some("10.32.1.2"), "10.32.1.3"));
    // Detach c4: its port is forgotten, the router keeps the others.
    weft(&lab, 1, &["detach", &format!("netns:{c4}")]).ok();
    let ports = std::fs::read_to_string(lab.spec.host_data_dir(1).join("ports.json")).unwrap();
    assert_eq!(ports.matches("vethwepl").count(), 3, "{ports}");
}

#[test]
fn expose_hide_and_a_flushed_ruleset_is_repaired() {
    let lab = lab("nfexp", 1, Topology::Full);
    weft(&lab, 1, &["launch"]).ok();
    attach(&lab, "10.32.1.2/24", "c1");
    let host_ping = |to: &str| on_host(&lab, 1, &["ping", "-c", "1", "-W", "1", to]).code == 0;
    assert!(!host_ping("10.32.1.2"), "reached before expose");
    let out = weft(&lab, 1, &["expose", "10.32.1.254/24"]).ok();
    assert_eq!(out, "10.32.1.254\n");
    assert_eq!(
        weft(&lab, 1, &["expose", "ip:10.32.1.254/24"]).ok(),
        "10.32.1.254\n",
        "idempotent"
    );
    assert!(host_ping("10.32.1.2"), "the host reaches c1 after expose");
    let masq = "ip saddr 10.32.1.0/24 ip daddr != 10.32.1.0/24 counter packets";
    let table = || on_host(&lab, 1, &["nft", "list", "table", "inet", "weft"]);
    let t = table().ok();
    assert!(t.contains(masq), "{t}");
    assert!(
        t.contains("ip daddr 10.32.1.0/24 ip saddr != 10.32.1.0/24"),
        "{t}"
    );
    weft(
        &lab,
        1,
        &["expose", "10.32.3.254/24", "--without-masquerade"],
    )
    .ok();
    let t = table().ok();
    assert!(t.contains("ip daddr 10.32.3.0/24 counter"), "{t}");
    assert!(!t.contains("ip saddr 10.32.3.0/24"), "no NAT: {t}");
    // Flushed by someone else: back within the 10 s check.
    on_host(&lab, 1, &["nft", "flush", "ruleset"]).ok();
    assert!(table().code != 0);
    wait_until(
        "the ruleset to be re-applied",
        Duration::from_secs(15),
        || {
            let t = table();
            if t.code == 0 && t.stdout.contains(masq) {
                Ok(())
            } else {
                Err(format!("{t:?}"))
            }
        },
    )
    .unwrap();
    let bridge = on_host(&lab, 1, &["nft", "list", "set", "bridge", "weft", "ports"]).ok();
    assert!(bridge.contains("vethwepl"), "{bridge}");
    // A restarted router re-exposes what it finds on the bridge, keeping --without-masquerade.
    weft(&lab, 1, &["stop"]).ok();
    on_host(&lab, 1, &["nft", "flush", "ruleset"]).ok();
    weft(&lab, 1, &["launch"]).ok();
    let t = table().ok();
    assert!(t.contains(masq), "{t}");
    assert!(!t.contains("ip saddr 10.32.3.0/24"), "{t}");
    // Hide: the host no longer reaches c1, the rules are gone; again is fine.
    assert_eq!(
        weft(&lab, 1, &["hide", "10.32.1.254/24"]).ok(),
        "10.32.1.254\n"
    );
    assert!(!host_ping("10.32.1.2"), "reached after hide");
    let t = table().ok();
    assert!(!t.contains("10.32.1.0/24"), "{t}");
    assert_eq!(
        weft(&lab, 1, &["hide", "10.32.1.254/24"]).ok(),
        "10.32.1.254\n"
    );
    // Bad input.
    let bad = weft(&lab, 1, &["expose", "10.32.1.300/24"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("invalid address"), "{bad:?}");
    for (path, want) in [
        ("/expose/10.32.5.1/24?skipNAT=maybe", "400 invalid skipNAT"),
        ("/expose/10.32.5.1/40", "400 invalid CIDR"),
        ("/expose/10.32.5.1/24?skipNAT=true", "204 "),
    ] {
        let got = on_host(
            &lab,
            1,
            &[
                "python3",
                "-c",
                "import sys, urllib.request as u, urllib.error as e\n\
                 try:\n  r = u.urlopen(u.Request('http://127.0.0.1:6784' + sys.argv[1], method='POST'), timeout=10); print(r.status, r.read().decode())\n\
                 except e.HTTPError as x: print(x.code, x.read().decode())",
                path,
            ],
        )
        .ok();
        assert!(got.starts_with(want), "{path}: {got}");
    }
}

#[test]
fn reset_leaves_no_table_bridge_link_or_state_file() {
    let lab = lab("nfrst", 1, Topology::Full);
    weft(&lab, 1, &["launch"]).ok();
    let ns = attach(&lab, "10.32.1.2/24", "c1");
    weft(&lab, 1, &["expose", "10.32.1.254/24"]).ok();
    let data = lab.spec.host_data_dir(1);
    let files = |d: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = files(&data);
    assert!(before.contains(&"ports.json".to_owned()), "{before:?}");
    assert!(before.contains(&"peer-name".to_owned()), "{before:?}");
    let r = weft(&lab, 1, &["reset"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    let tables = on_host(&lab, 1, &["nft", "list", "tables"]).ok();
    assert!(!tables.contains("weft"), "{tables}");
    let links = on_host(&lab, 1, &["ip", "-o", "link", "show"]).ok();
    assert!(
        !links.contains("weave") && !links.contains("vethwe"),
        "{links}"
    );
    let left = files(&data);
    assert!(left.is_empty(), "left in the data dir: {left:?}");
    let status = weft(&lab, 1, &["status"]);
    assert_eq!(status.code, 1, "router stopped: {status:?}");
    let inside = in_c(&lab, "c1", &["ip", "-o", "link", "show"]).ok();
    assert!(!inside.contains("ethwe"), "{inside}");
    // Again, with nothing there: still fine, still silent.
    let r = weft(&lab, 1, &["reset", "--force"]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    // And weft starts again from scratch.
    weft(&lab, 1, &["launch"]).ok();
    weft(&lab, 1, &["attach", "10.32.1.2/24", &format!("netns:{ns}")]).ok();
    weft(&lab, 1, &["reset"]).ok();
}
