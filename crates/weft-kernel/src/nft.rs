//! weft's nftables rules: a typed model ([`Ruleset`]) of weft's own tables, rendered to an
//! `nft` script and applied with `nft -f -` in one transaction.
//!
//! nftables tables belong to one address family, so "weft's one table" is one table per
//! family it needs, both named `weft`:
//!
//! * `inet weft`: what Weave's iptables did for `weave expose` (weave-protocol.md §6.3): per
//!   exposed CIDR `C` with NAT, in `postrouting` (nat): multicast from `C` returns,
//!   `daddr C saddr != C` and `saddr C daddr != C` are masqueraded; in `forward`, traffic out
//!   of the bridge to `C` is accepted (and counted).
//! * `bridge weft`: port filtering on the `weave` bridge for registered container ports (a
//!   host veth and the addresses given to its container). Ingress from such a port
//!   (`prerouting`): only IPv4, ARP and IPv6 frames; the IPv4 source and the ARP sender must
//!   be one of the port's addresses (ARP probes from 0.0.0.0 pass). Egress to such a port
//!   (`forward`): the IPv4 source (and ARP sender) must be inside one of the port's subnets,
//!   whatever the destination (multicast and broadcast included). Unregistered ports and the
//!   router's TAP are not filtered. The per-port data lives in three sets with concatenated
//!   keys (`ifname . ipv4_addr`, intervals for the subnets), so the rules stay the same few at
//!   any number of ports.
//!
//! Each table also holds a `canary` chain that nothing jumps to, with one rule: if it is
//! gone (`nft flush ruleset`, `nft flush table`, a firewall manager), [`ruleset_present`]
//! says so and the caller re-applies.
//!
//! Applying is atomic: the script first creates and deletes both tables (so a missing table
//! is no error), then declares them afresh, and `nft -f` runs the whole file as one
//! transaction. A re-apply is idempotent and no failure leaves half a ruleset. weft never
//! touches iptables.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::types::Cidr;

/// The name of weft's tables (one per family).
pub const TABLE: &str = "weft";
/// The families weft has a table in.
pub const FAMILIES: [&str; 2] = ["inet", "bridge"];
/// The comment on each table's canary rule.
pub const CANARY: &str = "weft canary";
/// The `nft` program (from PATH).
const NFT: &str = "nft";

/// An exposed CIDR (an address of the host on the bridge), with or without NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Exposed {
    pub cidr: CidrKey,
    /// Masquerade traffic between `cidr` and elsewhere (Weave's default; `skipNAT` clears it).
    pub nat: bool,
}

/// An IPv4 CIDR as an ordered key (address, prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CidrKey {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl CidrKey {
    /// The IPv4 CIDR `c`, or an error for IPv6.
    pub fn v4(c: Cidr) -> Result<CidrKey> {
        match c.addr() {
            IpAddr::V4(addr) => Ok(CidrKey {
                addr,
                prefix: c.prefix(),
            }),
            IpAddr::V6(_) => Err(Error::Invalid(format!(
                "{c}: weft's firewall rules take IPv4 addresses only"
            ))),
        }
    }
    fn mask(self) -> u32 {
        match self.prefix.min(32) {
            0 => 0,
            p => u32::MAX << (32 - u32::from(p)),
        }
    }
    /// The network address (host bits cleared).
    pub fn network_addr(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }
    /// The network, as `a.b.c.d/n`.
    pub fn network(self) -> String {
        format!("{}/{}", self.network_addr(), self.prefix)
    }
    fn contains(self, other: CidrKey) -> bool {
        other.prefix >= self.prefix
            && u32::from(self.addr) & self.mask() == u32::from(other.addr) & self.mask()
    }
}

impl std::fmt::Display for CidrKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A registered container port: the host end of its veth and the addresses (with their
/// prefixes) given to the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortAddrs {
    pub ifname: String,
    pub addrs: Vec<CidrKey>,
}

/// Everything weft wants in its nftables tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    /// The bridge containers attach to (`weave`).
    pub bridge: String,
    pub exposed: Vec<Exposed>,
    pub ports: Vec<PortAddrs>,
}

/// Interface names go into the script between double quotes: allow only what weft's and
/// Weave's names use, so nothing can close the quote.
pub fn check_ifname(name: &str) -> Result<()> {
    crate::handle::validate_ifname(name)?;
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.@+".contains(&b))
    {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "interface name {name:?}: weft's firewall takes letters, digits and -_.@+ only"
        )))
    }
}

impl Ruleset {
    /// An empty ruleset for `bridge`.
    pub fn new(bridge: &str) -> Ruleset {
        Ruleset {
            bridge: bridge.to_owned(),
            exposed: Vec::new(),
            ports: Vec::new(),
        }
    }

    /// Checks every name before anything is rendered.
    pub fn validate(&self) -> Result<()> {
        check_ifname(&self.bridge)?;
        for p in &self.ports {
            check_ifname(&p.ifname)?;
        }
        Ok(())
    }

    /// The `nft -f` script that replaces weft's tables with this ruleset, in one transaction.
    pub fn script(&self) -> Result<String> {
        self.validate()?;
        let mut s = String::new();
        for family in FAMILIES {
            // Declaring then deleting makes the delete succeed whether the table exists or not.
            let _ = writeln!(s, "table {family} {TABLE}\ndelete table {family} {TABLE}");
        }
        self.inet_table(&mut s);
        self.bridge_table(&mut s);
        Ok(s)
    }

    fn inet_table(&self, s: &mut String) {
        let bridge = &self.bridge;
        let mut exposed: Vec<Exposed> = self.exposed.clone();
        exposed.sort();
        exposed.dedup();
        let _ = writeln!(s, "table inet {TABLE} {{");
        s.push_str(
            "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
        );
        let mut seen = BTreeSet::new();
        for e in exposed.iter().filter(|e| e.nat) {
            let c = e.cidr.network();
            if !seen.insert(c.clone()) {
                continue;
            }
            let _ = writeln!(
                s,
                "\t\tip saddr {c} ip daddr 224.0.0.0/4 return comment \"expose {c}: multicast\""
            );
            let _ = writeln!(
                s,
                "\t\tip daddr {c} ip saddr != {c} counter masquerade comment \"expose {c}: into\""
            );
            let _ = writeln!(
                s,
                "\t\tip saddr {c} ip daddr != {c} counter masquerade comment \"expose {c}: out of\""
            );
        }
        s.push_str("\t}\n");
        s.push_str(
            "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n",
        );
        let mut seen = BTreeSet::new();
        for e in &exposed {
            let c = e.cidr.network();
            if seen.insert(c.clone()) {
                let _ = writeln!(
                    s,
                    "\t\toifname \"{bridge}\" ip daddr {c} counter accept comment \"expose {c}\""
                );
            }
        }
        s.push_str("\t}\n");
        let _ = writeln!(
            s,
            "\tchain canary {{\n\t\tcounter comment \"{CANARY}\"\n\t}}"
        );
        s.push_str("}\n");
    }

    fn bridge_table(&self, s: &mut String) {
        let mut ports: Vec<&PortAddrs> = self.ports.iter().collect();
        ports.sort_by(|a, b| a.ifname.cmp(&b.ifname));
        ports.dedup_by(|a, b| a.ifname == b.ifname);
        let mut names = Vec::new();
        let mut addrs = Vec::new();
        let mut subnets = Vec::new();
        for p in &ports {
            names.push(format!("\"{}\"", p.ifname));
            let own: BTreeSet<Ipv4Addr> = p.addrs.iter().map(|a| a.addr).collect();
            for a in own {
                addrs.push(format!("\"{}\" . {a}", p.ifname));
            }
            for n in outermost(&p.addrs) {
                subnets.push(format!("\"{}\" . {}", p.ifname, n.network()));
            }
        }
        let _ = writeln!(s, "table bridge {TABLE} {{");
        set(s, "ports", "ifname", false, &names);
        set(s, "port_addrs", "ifname . ipv4_addr", false, &addrs);
        set(s, "port_subnets", "ifname . ipv4_addr", true, &subnets);
        s.push_str(concat!(
            "\tchain prerouting {\n",
            "\t\ttype filter hook prerouting priority filter; policy accept;\n",
            "\t\tiifname @ports ether type != { ip, arp, ip6 } counter drop comment \"from a port: not IPv4, ARP or IPv6\"\n",
            "\t\tiifname @ports ether type ip iifname . ip saddr != @port_addrs counter drop comment \"from a port: IPv4 source not its own\"\n",
            "\t\tiifname @ports ether type arp arp saddr ip != 0.0.0.0 iifname . arp saddr ip != @port_addrs counter drop comment \"from a port: ARP sender not its own\"\n",
            "\t}\n",
            "\tchain forward {\n",
            "\t\ttype filter hook forward priority filter; policy accept;\n",
            "\t\toifname @ports ether type ip oifname . ip saddr != @port_subnets counter drop comment \"to a port: IPv4 source outside its subnets\"\n",
            "\t\toifname @ports ether type arp arp saddr ip != 0.0.0.0 oifname . arp saddr ip != @port_subnets counter drop comment \"to a port: ARP sender outside its subnets\"\n",
            "\t}\n",
        ));
        let _ = writeln!(
            s,
            "\tchain canary {{\n\t\tcounter comment \"{CANARY}\"\n\t}}"
        );
        s.push_str("}\n");
    }
}

fn set(s: &mut String, name: &str, ty: &str, interval: bool, elements: &[String]) {
    let _ = write!(s, "\tset {name} {{\n\t\ttype {ty}\n");
    if interval {
        s.push_str("\t\tflags interval\n");
    }
    if !elements.is_empty() {
        let _ = writeln!(s, "\t\telements = {{ {} }}", elements.join(", "));
    }
    s.push_str("\t}\n");
}

/// The networks of `addrs` without those inside another one (interval sets refuse overlaps;
/// two CIDRs either nest or are disjoint).
fn outermost(addrs: &[CidrKey]) -> Vec<CidrKey> {
    let mut nets: Vec<CidrKey> = addrs
        .iter()
        .map(|a| CidrKey {
            addr: a.network_addr(),
            prefix: a.prefix,
        })
        .collect();
    nets.sort_by_key(|n| (n.prefix, n.addr));
    nets.dedup();
    let mut out: Vec<CidrKey> = Vec::new();
    for n in nets {
        if !out.iter().any(|o| o.contains(n)) {
            out.push(n);
        }
    }
    out.sort();
    out
}

fn nft_missing(e: &std::io::Error) -> Error {
    Error::Nft {
        op: "run nft",
        detail: if e.kind() == std::io::ErrorKind::NotFound {
            "the nft program is not installed: install nftables (Debian: apt-get install nftables)"
                .to_owned()
        } else {
            format!("cannot run nft: {e}")
        },
    }
}

/// Runs `nft ARGS` with `stdin`; stdout on success.
fn run_nft(op: &'static str, args: &[&str], stdin: Option<&str>) -> Result<(bool, String, String)> {
    let mut child = Command::new(NFT)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| nft_missing(&e))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| Error::Nft {
            op,
            detail: format!("writing the script to nft: {e}"),
        })?;
    }
    let out = child.wait_with_output().map_err(|e| Error::Nft {
        op,
        detail: format!("waiting for nft: {e}"),
    })?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Explains an `nft -f -` failure: nft's message, and the rules of `script` it points at.
fn explain(script: &str, stderr: &str) -> String {
    let lines: Vec<&str> = script.lines().collect();
    let mut failed = BTreeSet::new();
    for l in stderr.lines() {
        // "/dev/stdin:12:3-40: Error: ..."
        if let Some(rest) = l.strip_prefix("/dev/stdin:") {
            if let Some(n) = rest.split(':').next().and_then(|n| n.parse::<usize>().ok()) {
                failed.insert(n);
            }
        }
    }
    let first = stderr
        .lines()
        .find(|l| l.contains("Error"))
        .unwrap_or(stderr.trim());
    let mut msg = first.trim().to_owned();
    for n in failed {
        if let Some(rule) = n.checked_sub(1).and_then(|i| lines.get(i)) {
            let _ = write!(msg, "; failed rule (line {n}): {}", rule.trim());
        }
    }
    msg.push_str(
        "; nothing was changed. Check that the kernel has nf_tables with the bridge and inet families (modprobe nf_tables nft_chain_nat nf_conntrack_bridge) and nftables >= 0.9.4",
    );
    msg
}

/// Replaces weft's tables with `ruleset`, atomically (one `nft -f` transaction).
pub fn ensure_ruleset(ruleset: &Ruleset) -> Result<()> {
    let script = ruleset.script()?;
    let (ok, _, stderr) = run_nft("apply weft's nftables rules", &["-f", "-"], Some(&script))?;
    if ok {
        Ok(())
    } else {
        Err(Error::Nft {
            op: "apply weft's nftables rules",
            detail: explain(&script, &stderr),
        })
    }
}

/// True when both of weft's tables exist with their canary rule (false after a flush).
pub fn ruleset_present() -> Result<bool> {
    for family in FAMILIES {
        // -t: terse, without set elements (the port sets may be large).
        let (ok, out, stderr) = run_nft(
            "list weft's nftables table",
            &["-t", "list", "table", family, TABLE],
            None,
        )?;
        if !ok {
            if stderr.contains("No such file or directory") {
                return Ok(false);
            }
            return Err(Error::Nft {
                op: "list weft's nftables table",
                detail: stderr.trim().to_owned(),
            });
        }
        if !out.contains(CANARY) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Names of the families in which a `weft` table exists.
pub fn tables_present() -> Result<Vec<String>> {
    let (ok, out, stderr) = run_nft("list nftables tables", &["list", "tables"], None)?;
    if !ok {
        return Err(Error::Nft {
            op: "list nftables tables",
            detail: stderr.trim().to_owned(),
        });
    }
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("table"), Some(f), Some(TABLE)) => Some(f.to_owned()),
                _ => None,
            }
        })
        .collect())
}

/// Deletes weft's tables (atomically, both or none). Returns whether any existed.
pub fn delete_ruleset() -> Result<bool> {
    let existed = !tables_present()?.is_empty();
    let mut script = String::new();
    for family in FAMILIES {
        let _ = writeln!(
            script,
            "table {family} {TABLE}\ndelete table {family} {TABLE}"
        );
    }
    let (ok, _, stderr) = run_nft("delete weft's nftables tables", &["-f", "-"], Some(&script))?;
    if ok {
        Ok(existed)
    } else {
        Err(Error::Nft {
            op: "delete weft's nftables tables",
            detail: explain(&script, &stderr),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> CidrKey {
        CidrKey::v4(s.parse().unwrap()).unwrap()
    }

    fn sample() -> Ruleset {
        Ruleset {
            bridge: "weave".into(),
            exposed: vec![
                Exposed {
                    cidr: key("10.32.1.254/24"),
                    nat: true,
                },
                Exposed {
                    cidr: key("10.40.0.1/16"),
                    nat: false,
                },
            ],
            ports: vec![
                PortAddrs {
                    ifname: "vethwepl2".into(),
                    addrs: vec![key("10.32.2.2/24")],
                },
                PortAddrs {
                    ifname: "vethwepl1".into(),
                    addrs: vec![
                        key("10.32.1.2/24"),
                        key("10.32.0.9/12"),
                        key("10.32.1.3/24"),
                    ],
                },
            ],
        }
    }

    #[test]
    fn the_script_replaces_both_tables_in_one_file() {
        let s = sample().script().unwrap();
        let head: Vec<&str> = s.lines().take(4).collect();
        assert_eq!(
            head,
            [
                "table inet weft",
                "delete table inet weft",
                "table bridge weft",
                "delete table bridge weft"
            ]
        );
        assert_eq!(s.matches("chain canary").count(), 2);
        assert_eq!(s.matches(CANARY).count(), 2);
        // Rendering is deterministic whatever the order of the input.
        let mut shuffled = sample();
        shuffled.ports.reverse();
        shuffled.exposed.reverse();
        assert_eq!(shuffled.script().unwrap(), s);
    }

    #[test]
    fn exposed_cidrs_get_weaves_three_nat_rules_unless_skip_nat() {
        let s = sample().script().unwrap();
        for rule in [
            "ip saddr 10.32.1.0/24 ip daddr 224.0.0.0/4 return",
            "ip daddr 10.32.1.0/24 ip saddr != 10.32.1.0/24 counter masquerade",
            "ip saddr 10.32.1.0/24 ip daddr != 10.32.1.0/24 counter masquerade",
            "oifname \"weave\" ip daddr 10.32.1.0/24 counter accept",
            "oifname \"weave\" ip daddr 10.40.0.0/16 counter accept",
        ] {
            assert!(s.contains(rule), "missing {rule:?} in\n{s}");
        }
        assert!(
            !s.contains("masquerade comment \"expose 10.40.0.0/16"),
            "{s}"
        );
        assert!(
            !s.contains("ip saddr 10.40.0.0/16"),
            "skipNAT: no NAT rules\n{s}"
        );
    }

    #[test]
    fn port_sets_hold_addresses_and_outermost_subnets() {
        let s = sample().script().unwrap();
        assert!(
            s.contains("elements = { \"vethwepl1\", \"vethwepl2\" }"),
            "{s}"
        );
        assert!(
            s.contains(
                "elements = { \"vethwepl1\" . 10.32.0.9, \"vethwepl1\" . 10.32.1.2, \"vethwepl1\" . 10.32.1.3, \"vethwepl2\" . 10.32.2.2 }"
            ),
            "{s}"
        );
        // 10.32.1.0/24 lies inside 10.32.0.0/12 on the same port: only the /12 (no overlap).
        assert!(
            s.contains("elements = { \"vethwepl1\" . 10.32.0.0/12, \"vethwepl2\" . 10.32.2.0/24 }"),
            "{s}"
        );
    }

    #[test]
    fn empty_sets_have_no_elements_line_and_rules_stay_few_at_1000_ports() {
        let empty = Ruleset::new("weave").script().unwrap();
        assert!(!empty.contains("elements"), "{empty}");
        let mut big = Ruleset::new("weave");
        for i in 0..1000u32 {
            let a = Ipv4Addr::from(0x0a20_0000 + i);
            big.ports.push(PortAddrs {
                ifname: format!("vethwepl{i:07x}"),
                addrs: vec![CidrKey {
                    addr: a,
                    prefix: 24,
                }],
            });
        }
        let s = big.script().unwrap();
        let rules = |t: &str| t.lines().filter(|l| l.contains(" drop ")).count();
        assert_eq!(rules(&s), rules(&empty));
        assert_eq!(rules(&s), 5);
    }

    #[test]
    fn names_that_could_break_the_script_are_refused() {
        for bad in ["a\"b", "a b", "", "x\\y", "a;b", "abcdefghijklmnop"] {
            let mut r = Ruleset::new("weave");
            r.ports.push(PortAddrs {
                ifname: bad.into(),
                addrs: vec![],
            });
            assert!(r.script().is_err(), "{bad:?}");
        }
        assert!(Ruleset::new("we{ave").script().is_err());
        assert!(CidrKey::v4("fe80::1/64".parse().unwrap()).is_err());
    }

    #[test]
    fn failures_name_the_rule() {
        let script = "table inet weft\nbogus rule here\n";
        let msg = explain(
            script,
            "/dev/stdin:2:1-5: Error: syntax error, unexpected string\nbogus rule here\n^^^^^\n",
        );
        assert!(
            msg.starts_with("/dev/stdin:2:1-5: Error: syntax error"),
            "{msg}"
        );
        assert!(
            msg.contains("failed rule (line 2): bogus rule here"),
            "{msg}"
        );
    }

    #[test]
    fn a_missing_nft_says_to_install_nftables() {
        let e = nft_missing(&std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(e.to_string().contains("install nftables"), "{e}");
    }

    #[test]
    fn outermost_drops_nested_networks() {
        let got = outermost(&[key("10.32.1.5/24"), key("10.32.1.6/24"), key("10.0.0.1/8")]);
        assert_eq!(got, vec![key("10.0.0.0/8")]);
        let got = outermost(&[key("10.32.1.5/24"), key("10.32.2.6/24")]);
        assert_eq!(got, vec![key("10.32.1.0/24"), key("10.32.2.0/24")]);
    }
}
