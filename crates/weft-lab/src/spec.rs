//! What a lab is: its hosts, names, addresses and topology, and the nftables ruleset that
//! shapes its underlay. Pure: nothing here touches the system.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The most hosts one lab holds (host i has underlay address 198.18.0.i/24).
pub const MAX_HOSTS: usize = 250;

/// Which hosts reach which over the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Every host reaches every other.
    Full,
    /// h1-h2-h3-...: each host reaches only its neighbours, so multi-hop is needed.
    Line,
    /// h1 is the hub: every other host reaches only h1.
    Star,
}

impl FromStr for Topology {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(Topology::Full),
            "line" => Ok(Topology::Line),
            "star" => Ok(Topology::Star),
            _ => Err(format!(
                "unknown topology {s:?}: expected full, line or star"
            )),
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Topology::Full => "full",
            Topology::Line => "line",
            Topology::Star => "star",
        })
    }
}

/// A lab's shape. Saved as `lab.json` in the lab's state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    /// Prefix of every namespace the lab makes: `<prefix>-ul`, `<prefix>-h<i>`, `<prefix>-h<i>-<c>`.
    pub prefix: String,
    pub hosts: usize,
    pub topology: Topology,
    /// MTU of the underlay links.
    pub mtu: u32,
    /// Parent of the lab's state directory (`<state_root>/<prefix>`).
    pub state_root: PathBuf,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error(
        "invalid lab prefix {0:?}: use 1-10 lower-case letters and digits, starting with a letter"
    )]
    Prefix(String),
    #[error("a lab has 1 to {MAX_HOSTS} hosts, not {0}")]
    Hosts(usize),
    #[error("underlay MTU {0} is out of range (576-65535)")]
    Mtu(u32),
    #[error("unknown host {0:?}: this lab has hosts h1 to h{1}")]
    Host(String, usize),
    #[error("invalid container name {0:?}: use 1-8 lower-case letters and digits")]
    Container(String),
}

/// Default root for labs' state directories.
pub const DEFAULT_STATE_ROOT: &str = "/run/weft-lab";

pub fn validate_prefix(prefix: &str) -> Result<(), SpecError> {
    let ok = (1..=10).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(SpecError::Prefix(prefix.to_owned()))
    }
}

impl LabSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_prefix(&self.prefix)?;
        if !(1..=MAX_HOSTS).contains(&self.hosts) {
            return Err(SpecError::Hosts(self.hosts));
        }
        if !(576..=65535).contains(&self.mtu) {
            return Err(SpecError::Mtu(self.mtu));
        }
        Ok(())
    }

    /// Host number from `h3` or `3`.
    pub fn host(&self, name: &str) -> Result<usize, SpecError> {
        let n = name.strip_prefix('h').unwrap_or(name);
        match n.parse::<usize>() {
            Ok(i) if (1..=self.hosts).contains(&i) => Ok(i),
            _ => Err(SpecError::Host(name.to_owned(), self.hosts)),
        }
    }

    pub fn underlay_ns(&self) -> String {
        format!("{}-ul", self.prefix)
    }

    pub fn host_ns(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    pub fn container_ns(&self, i: usize, container: &str) -> Result<String, SpecError> {
        let ok = (1..=8).contains(&container.len())
            && container
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !ok {
            return Err(SpecError::Container(container.to_owned()));
        }
        Ok(format!("{}-h{i}-{container}", self.prefix))
    }

    /// Host i's underlay address.
    pub fn host_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, i as u8)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_root.join(&self.prefix)
    }

    pub fn host_data_dir(&self, i: usize) -> PathBuf {
        self.state_dir().join(format!("h{i}")).join("data")
    }

    pub fn host_run_dir(&self, i: usize) -> PathBuf {
        self.state_dir().join(format!("h{i}")).join("run")
    }

    /// The pairs of hosts the topology lets talk, each pair once (a < b); `None` for full.
    pub fn links(&self) -> Option<Vec<(usize, usize)>> {
        match self.topology {
            Topology::Full => None,
            Topology::Line => Some((1..self.hosts).map(|i| (i, i + 1)).collect()),
            Topology::Star => Some((2..=self.hosts).map(|i| (1, i)).collect()),
        }
    }

    /// The nftables script (bridge family, run in the underlay namespace) that enforces the
    /// topology and holds the empty fault-injection sets and chains.
    pub fn ruleset(&self) -> String {
        let mut s = String::new();
        s.push_str("table bridge weftlab {\n");
        s.push_str("  set cut { type ipv4_addr . ipv4_addr; }\n");
        s.push_str("  set isolated { type ipv4_addr; }\n");
        if let Some(links) = self.links() {
            s.push_str("  set links { type ipv4_addr . ipv4_addr;");
            if !links.is_empty() {
                let elems: Vec<String> = links
                    .iter()
                    .flat_map(|&(a, b)| {
                        let (x, y) = (self.host_addr(a), self.host_addr(b));
                        [format!("{x} . {y}"), format!("{y} . {x}")]
                    })
                    .collect();
                s.push_str(&format!(" elements = {{ {} }};", elems.join(", ")));
            }
            s.push_str(" }\n");
        }
        s.push_str("  chain loss_all { }\n");
        for i in 1..=self.hosts {
            s.push_str(&format!("  chain loss_h{i} {{ }}\n"));
        }
        s.push_str("  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
        s.push_str("    ip saddr @isolated drop\n    ip daddr @isolated drop\n");
        s.push_str("    ip saddr . ip daddr @cut drop\n");
        if self.links().is_some() {
            s.push_str("    ip saddr . ip daddr != @links drop\n");
        }
        s.push_str("    jump loss_all\n");
        for i in 1..=self.hosts {
            let a = self.host_addr(i);
            s.push_str(&format!(
                "    ip saddr {a} jump loss_h{i}\n    ip daddr {a} jump loss_h{i}\n"
            ));
        }
        s.push_str("  }\n}\n");
        s
    }
}

/// The nftables commands that make `chain` drop `percent`% of what passes it (0 clears it).
pub fn loss_script(chain: &str, percent: u8) -> String {
    let mut s = format!("flush chain bridge weftlab {chain}\n");
    match percent {
        0 => {}
        // numgen values run 0-99, so "< 100" is not a valid match: drop everything.
        100.. => s.push_str(&format!("add rule bridge weftlab {chain} drop\n")),
        p => s.push_str(&format!(
            "add rule bridge weftlab {chain} numgen random mod 100 < {p} drop\n"
        )),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hosts: usize, topology: Topology) -> LabSpec {
        LabSpec {
            prefix: "t".into(),
            hosts,
            topology,
            mtu: 1500,
            state_root: "/run/weft-lab".into(),
        }
    }

    #[test]
    fn names_and_addresses() {
        let s = spec(3, Topology::Full);
        assert_eq!(s.host_ns(2), "t-h2");
        assert_eq!(s.underlay_ns(), "t-ul");
        assert_eq!(s.container_ns(1, "c1").unwrap(), "t-h1-c1");
        assert!(s.container_ns(1, "C-1").is_err());
        assert_eq!(s.host_addr(3).to_string(), "198.18.0.3");
        assert_eq!(s.host("h3"), Ok(3));
        assert_eq!(s.host("2"), Ok(2));
        assert!(s.host("h4").is_err());
        assert!(s.host("h0").is_err());
    }

    #[test]
    fn validation() {
        assert!(spec(3, Topology::Full).validate().is_ok());
        assert_eq!(spec(0, Topology::Full).validate(), Err(SpecError::Hosts(0)));
        assert!(validate_prefix("a-b").is_err());
        assert!(validate_prefix("1ab").is_err());
        assert!(validate_prefix("abcdefghijk").is_err());
        let mut s = spec(2, Topology::Line);
        s.mtu = 100;
        assert_eq!(s.validate(), Err(SpecError::Mtu(100)));
    }

    #[test]
    fn topologies() {
        assert_eq!(spec(3, Topology::Full).links(), None);
        assert_eq!(spec(3, Topology::Line).links(), Some(vec![(1, 2), (2, 3)]));
        assert_eq!(
            spec(4, Topology::Star).links(),
            Some(vec![(1, 2), (1, 3), (1, 4)])
        );
        let r = spec(3, Topology::Line).ruleset();
        assert!(
            r.contains("198.18.0.1 . 198.18.0.2, 198.18.0.2 . 198.18.0.1"),
            "{r}"
        );
        assert!(r.contains("!= @links drop"));
        assert!(!spec(3, Topology::Full).ruleset().contains("@links"));
        assert!(spec(1, Topology::Line)
            .ruleset()
            .contains("set links { type ipv4_addr . ipv4_addr; }"));
    }

    #[test]
    fn loss_rules() {
        assert_eq!(
            loss_script("loss_all", 0),
            "flush chain bridge weftlab loss_all\n"
        );
        assert!(loss_script("loss_h2", 30).contains("numgen random mod 100 < 30 drop"));
        assert!(loss_script("loss_h2", 100).ends_with("loss_h2 drop\n"));
    }
}
