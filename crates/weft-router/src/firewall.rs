//! The router's firewall: the desired state of weft's nftables tables (exposed CIDRs with
//! their NAT flag, registered container ports with their addresses), applied atomically
//! through `weft_kernel::nft`, and kept applied.
//!
//! * `weft expose` (`POST /expose/{ip}/{len}`) puts the address on the `weave` bridge, sends a
//!   gratuitous ARP and adds the NAT and forward rules (weave-services.md §9.4); `weft hide`
//!   (`DELETE /expose/{ip}/{len}`) undoes it. A failed apply undoes the call's changes.
//! * `weft attach`/`detach` register a container's host veth with its addresses
//!   (`PUT`/`DELETE /weft/ports/{ifname}`) for isolation and anti-spoofing (see
//!   `weft_kernel::nft`).
//! * Ports and the exposed CIDRs without NAT are persisted in `<data-dir>/ports.json`
//!   (written to a temporary file and renamed). At start the router re-exposes every IPv4
//!   address on the bridge (as Weave's `Reexpose`) and forgets ports whose link is gone.
//! * [`Firewall::reconcile`], every [`CHECK_EVERY`] (Weave's canary period), forgets gone
//!   ports and re-applies the tables if they were flushed or deleted.
//!
//! All operations block (netlink, the `nft` program): the API calls them on blocking threads.
//! One mutex serialises them, so the applied ruleset is always the latest state's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use weft_kernel::nft::{CidrKey, Exposed, PortAddrs, Ruleset};
use weft_kernel::{Cidr, Handle};

/// How often the tables are checked (Weave polls its canary chains every 10 s).
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// The state file, in the data directory.
pub const PORTS_FILE: &str = "ports.json";

/// What went wrong, for the API to answer.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// The request itself is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// The operation did not complete (500), e.g. its thread panicked.
    #[error("{0}")]
    Internal(String),
    /// The kernel or nft refused (500).
    #[error("{what}: {source}")]
    Kernel {
        what: String,
        source: weft_kernel::Error,
    },
}

fn kernel(what: impl Into<String>) -> impl FnOnce(weft_kernel::Error) -> FirewallError {
    let what = what.into();
    move |source| FirewallError::Kernel { what, source }
}

/// The kernel side, behind a trait so the state logic is tested without root.
pub trait Backend: Send {
    fn apply(&mut self, r: &Ruleset) -> weft_kernel::Result<()>;
    fn present(&mut self) -> weft_kernel::Result<bool>;
    /// IPv4 addresses on the bridge.
    fn bridge_addrs(&mut self) -> weft_kernel::Result<Vec<CidrKey>>;
    /// Adds `c` to the bridge and announces it; true if it was added.
    fn add_bridge_addr(&mut self, c: CidrKey) -> weft_kernel::Result<bool>;
    fn remove_bridge_addr(&mut self, c: CidrKey) -> weft_kernel::Result<bool>;
    /// Names of the links in this namespace.
    fn links(&mut self) -> weft_kernel::Result<BTreeSet<String>>;
}

/// The real kernel: netlink for the bridge, `nft` for the tables.
pub struct KernelBackend {
    pub bridge: String,
}

impl Backend for KernelBackend {
    fn apply(&mut self, r: &Ruleset) -> weft_kernel::Result<()> {
        weft_kernel::nft::ensure_ruleset(r)
    }
    fn present(&mut self) -> weft_kernel::Result<bool> {
        weft_kernel::nft::ruleset_present()
    }
    fn bridge_addrs(&mut self) -> weft_kernel::Result<Vec<CidrKey>> {
        let mut h = Handle::new()?;
        let Some(_) = h.link_by_name(&self.bridge)? else {
            return Ok(Vec::new());
        };
        Ok(h.list_addrs(Some(&self.bridge))?
            .into_iter()
            .filter_map(|a| CidrKey::v4(a.cidr).ok())
            .collect())
    }
    fn add_bridge_addr(&mut self, c: CidrKey) -> weft_kernel::Result<bool> {
        let mut h = Handle::new()?;
        let link = h.require_link(&self.bridge)?;
        let cidr = Cidr::new(IpAddr::V4(c.addr), c.prefix)?;
        let added = h.ensure_addr(&self.bridge, cidr)?;
        if let Some(mac) = link.mac {
            // As Weave: best effort, the address is there either way.
            if let Err(e) = weft_kernel::send_gratuitous_arp(&self.bridge, link.index, mac, c.addr)
            {
                warn!("gratuitous ARP for {c}: {e}");
            }
        }
        Ok(added)
    }
    fn remove_bridge_addr(&mut self, c: CidrKey) -> weft_kernel::Result<bool> {
        let cidr = Cidr::new(IpAddr::V4(c.addr), c.prefix)?;
        Handle::new()?.remove_addr(&self.bridge, cidr)
    }
    fn links(&mut self) -> weft_kernel::Result<BTreeSet<String>> {
        Ok(Handle::new()?
            .links()?
            .into_iter()
            .map(|l| l.name)
            .collect())
    }
}

/// What is persisted in [`PORTS_FILE`].
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Persisted {
    /// Host veth name → the container's addresses (`a.b.c.d/n`).
    ports: BTreeMap<String, Vec<String>>,
    /// Exposed CIDRs without NAT (`--without-masquerade`), so a restart keeps the choice.
    #[serde(default)]
    exposed_without_nat: Vec<String>,
}

struct State {
    backend: Box<dyn Backend>,
    bridge: String,
    /// Exposed CIDR → NAT.
    exposed: BTreeMap<CidrKey, bool>,
    ports: BTreeMap<String, Vec<CidrKey>>,
    file: PathBuf,
}

impl State {
    fn ruleset(&self) -> Ruleset {
        Ruleset {
            bridge: self.bridge.clone(),
            exposed: self
                .exposed
                .iter()
                .map(|(&cidr, &nat)| Exposed { cidr, nat })
                .collect(),
            ports: self
                .ports
                .iter()
                .map(|(ifname, addrs)| PortAddrs {
                    ifname: ifname.clone(),
                    addrs: addrs.clone(),
                })
                .collect(),
        }
    }

    fn apply(&mut self) -> weft_kernel::Result<()> {
        let r = self.ruleset();
        self.backend.apply(&r)
    }

    fn persist(&self) {
        let p = Persisted {
            ports: self
                .ports
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().map(|c| c.to_string()).collect()))
                .collect(),
            exposed_without_nat: self
                .exposed
                .iter()
                .filter(|(_, nat)| !**nat)
                .map(|(c, _)| c.to_string())
                .collect(),
        };
        let tmp = self.file.with_extension("json.tmp");
        let result = serde_json::to_vec_pretty(&p)
            .map_err(std::io::Error::other)
            .and_then(|text| std::fs::write(&tmp, text))
            .and_then(|()| std::fs::rename(&tmp, &self.file));
        if let Err(e) = result {
            warn!(
                "cannot save the firewall's ports to {}: {e}; they will be lost at restart",
                self.file.display()
            );
        }
    }

    /// Forget ports whose link is gone; true if any was.
    fn drop_gone_ports(&mut self) -> weft_kernel::Result<bool> {
        if self.ports.is_empty() {
            return Ok(false);
        }
        let links = self.backend.links()?;
        let before = self.ports.len();
        self.ports.retain(|name, _| {
            let keep = links.contains(name);
            if !keep {
                info!("forgetting firewall port {name}: the link is gone");
            }
            keep
        });
        Ok(self.ports.len() != before)
    }
}

fn load(file: &Path) -> Persisted {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            warn!(
                "ignoring {}: not valid JSON ({e}); ports will be registered again by attach",
                file.display()
            );
            Persisted::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
        Err(e) => {
            warn!(
                "cannot read {}: {e}; starting with no ports",
                file.display()
            );
            Persisted::default()
        }
    }
}

fn parse_cidrs(texts: &[String]) -> Vec<CidrKey> {
    texts
        .iter()
        .filter_map(|t| t.parse::<Cidr>().ok().and_then(|c| CidrKey::v4(c).ok()))
        .collect()
}

/// The firewall state of this router.
pub struct Firewall {
    state: Mutex<State>,
}

impl Firewall {
    /// Loads the persisted ports, re-exposes the bridge's addresses and applies the tables.
    /// A failure to apply is logged: [`Firewall::reconcile`] retries.
    pub fn start(data_dir: &Path, bridge: &str, mut backend: Box<dyn Backend>) -> Firewall {
        let file = data_dir.join(PORTS_FILE);
        let saved = load(&file);
        let without_nat: BTreeSet<CidrKey> = parse_cidrs(&saved.exposed_without_nat)
            .into_iter()
            .collect();
        let exposed = match backend.bridge_addrs() {
            Ok(addrs) => addrs
                .into_iter()
                .map(|c| (c, !without_nat.contains(&c)))
                .collect(),
            Err(e) => {
                warn!("cannot list the addresses of bridge {bridge} to re-expose them: {e}");
                BTreeMap::new()
            }
        };
        for c in exposed.keys() {
            info!("re-exposing {c} on bridge {bridge}");
        }
        let ports = saved
            .ports
            .iter()
            .map(|(name, addrs)| (name.clone(), parse_cidrs(addrs)))
            .collect();
        let mut st = State {
            backend,
            bridge: bridge.to_owned(),
            exposed,
            ports,
            file,
        };
        match st.drop_gone_ports() {
            Ok(true) => st.persist(),
            Ok(false) => {}
            Err(e) => warn!("cannot list links to check the firewall's ports: {e}"),
        }
        if let Err(e) = st.apply() {
            warn!(
                "cannot apply weft's nftables rules (retrying every {}s): {e}",
                CHECK_EVERY.as_secs()
            );
        }
        Firewall {
            state: Mutex::new(st),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state: the next apply
        // renders it whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Exposes `cidr` (NAT unless `skip_nat`). Idempotent; a failure changes nothing.
    pub fn expose(&self, cidr: CidrKey, skip_nat: bool) -> Result<(), FirewallError> {
        if cidr.prefix > 32 || cidr.addr == Ipv4Addr::UNSPECIFIED {
            return Err(FirewallError::BadRequest(format!("invalid CIDR {cidr}")));
        }
        let mut st = self.lock();
        let added = st
            .backend
            .add_bridge_addr(cidr)
            .map_err(kernel(format!("adding {cidr} to the bridge")))?;
        let previous = st.exposed.insert(cidr, !skip_nat);
        if let Err(e) = st.apply() {
            match previous {
                Some(nat) => st.exposed.insert(cidr, nat),
                None => st.exposed.remove(&cidr),
            };
            if added {
                let _ = st.backend.remove_bridge_addr(cidr);
            }
            return Err(kernel(format!("applying the rules for {cidr}"))(e));
        }
        st.persist();
        Ok(())
    }

    /// Hides `cidr`: removes it from the bridge and its rules. Idempotent; true if it was
    /// exposed or on the bridge.
    pub fn hide(&self, cidr: CidrKey) -> Result<bool, FirewallError> {
        let mut st = self.lock();
        let removed = st
            .backend
            .remove_bridge_addr(cidr)
            .map_err(kernel(format!("removing {cidr} from the bridge")))?;
        let was = st.exposed.remove(&cidr);
        if was.is_some() {
            if let Err(e) = st.apply() {
                if let Some(nat) = was {
                    st.exposed.insert(cidr, nat);
                }
                return Err(kernel(format!("removing the rules for {cidr}"))(e));
            }
            st.persist();
        }
        Ok(removed || was.is_some())
    }

    /// Registers (or replaces) a container port's addresses.
    pub fn set_port(&self, ifname: &str, addrs: Vec<CidrKey>) -> Result<(), FirewallError> {
        weft_kernel::nft::check_ifname(ifname)
            .map_err(|e| FirewallError::BadRequest(e.to_string()))?;
        if addrs.is_empty() {
            return Err(FirewallError::BadRequest(format!(
                "port {ifname}: give at least one cidr=a.b.c.d/n (or DELETE the port)"
            )));
        }
        let mut st = self.lock();
        let links = st
            .backend
            .links()
            .map_err(kernel("listing links".to_owned()))?;
        if !links.contains(ifname) {
            return Err(FirewallError::BadRequest(format!(
                "port {ifname}: no such interface on this host"
            )));
        }
        let previous = st.ports.insert(ifname.to_owned(), addrs);
        if let Err(e) = st.apply() {
            match previous {
                Some(p) => st.ports.insert(ifname.to_owned(), p),
                None => st.ports.remove(ifname),
            };
            return Err(kernel(format!("applying the rules for port {ifname}"))(e));
        }
        st.persist();
        Ok(())
    }

    /// Forgets a container port; true if it was registered.
    pub fn remove_port(&self, ifname: &str) -> Result<bool, FirewallError> {
        let mut st = self.lock();
        let Some(previous) = st.ports.remove(ifname) else {
            return Ok(false);
        };
        if let Err(e) = st.apply() {
            st.ports.insert(ifname.to_owned(), previous);
            return Err(kernel(format!("removing the rules for port {ifname}"))(e));
        }
        st.persist();
        Ok(true)
    }

    /// Forgets ports whose link is gone and re-applies the tables if they changed or were
    /// flushed or deleted. Returns whether it applied.
    pub fn reconcile(&self) -> Result<bool, FirewallError> {
        let mut st = self.lock();
        let dropped = st
            .drop_gone_ports()
            .map_err(kernel("listing links".to_owned()))?;
        let present = st
            .backend
            .present()
            .map_err(kernel("checking weft's nftables tables".to_owned()))?;
        if dropped || !present {
            if !present {
                info!("weft's nftables tables are missing or flushed: re-applying them");
            }
            st.apply()
                .map_err(kernel("re-applying weft's nftables rules".to_owned()))?;
        }
        if dropped {
            st.persist();
        }
        Ok(dropped || !present)
    }

    /// The registered ports (for status and tests).
    pub fn ports(&self) -> BTreeMap<String, Vec<CidrKey>> {
        self.lock().ports.clone()
    }

    /// The exposed CIDRs and their NAT flag.
    pub fn exposed(&self) -> BTreeMap<CidrKey, bool> {
        self.lock().exposed.clone()
    }
}

/// Go's `strconv.ParseBool`, which Weave uses for `skipNAT`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Default)]
    struct Fake {
        applied: Vec<Ruleset>,
        present: bool,
        fail_apply: bool,
        addrs: BTreeSet<CidrKey>,
        links: BTreeSet<String>,
    }

    struct Shared(Arc<Mutex<Fake>>);

    impl Backend for Shared {
        fn apply(&mut self, r: &Ruleset) -> weft_kernel::Result<()> {
            let mut f = self.0.lock().unwrap();
            if f.fail_apply {
                return Err(weft_kernel::Error::Nft {
                    op: "apply",
                    detail: "refused".into(),
                });
            }
            f.applied.push(r.clone());
            f.present = true;
            Ok(())
        }
        fn present(&mut self) -> weft_kernel::Result<bool> {
            Ok(self.0.lock().unwrap().present)
        }
        fn bridge_addrs(&mut self) -> weft_kernel::Result<Vec<CidrKey>> {
            Ok(self.0.lock().unwrap().addrs.iter().copied().collect())
        }
        fn add_bridge_addr(&mut self, c: CidrKey) -> weft_kernel::Result<bool> {
            Ok(self.0.lock().unwrap().addrs.insert(c))
        }
        fn remove_bridge_addr(&mut self, c: CidrKey) -> weft_kernel::Result<bool> {
            Ok(self.0.lock().unwrap().addrs.remove(&c))
        }
        fn links(&mut self) -> weft_kernel::Result<BTreeSet<String>> {
            Ok(self.0.lock().unwrap().links.clone())
        }
    }

    fn key(s: &str) -> CidrKey {
        CidrKey::v4(s.parse().unwrap()).unwrap()
    }

    fn start(dir: &Path, fake: &Arc<Mutex<Fake>>) -> Firewall {
        Firewall::start(dir, "weave", Box::new(Shared(Arc::clone(fake))))
    }

    #[test]
    fn expose_and_hide_change_bridge_and_rules_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Mutex::new(Fake::default()));
        let fw = start(dir.path(), &fake);
        fw.expose(key("10.32.1.254/24"), false).unwrap();
        fw.expose(key("10.40.0.1/16"), true).unwrap();
        fw.expose(key("10.40.0.1/16"), true).unwrap();
        {
            let f = fake.lock().unwrap();
            assert_eq!(f.addrs.len(), 2);
            let last = f.applied.last().unwrap();
            assert_eq!(last.exposed.len(), 2);
            assert!(last.exposed.contains(&Exposed {
                cidr: key("10.40.0.1/16"),
                nat: false
            }));
        }
        // A restarted router re-exposes the bridge's addresses, keeping skipNAT.
        let again = start(dir.path(), &fake);
        assert_eq!(
            again.exposed(),
            BTreeMap::from([(key("10.32.1.254/24"), true), (key("10.40.0.1/16"), false)])
        );
        assert!(again.hide(key("10.32.1.254/24")).unwrap());
        assert!(!again.hide(key("10.32.1.254/24")).unwrap(), "idempotent");
        assert_eq!(fake.lock().unwrap().addrs.len(), 1);
    }

    #[test]
    fn a_failed_apply_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Mutex::new(Fake::default()));
        fake.lock().unwrap().links.insert("vethwepl1".into());
        let fw = start(dir.path(), &fake);
        fake.lock().unwrap().fail_apply = true;
        let err = fw.expose(key("10.32.1.254/24"), false).unwrap_err();
        assert!(matches!(err, FirewallError::Kernel { .. }), "{err}");
        assert!(fake.lock().unwrap().addrs.is_empty());
        assert!(fw.exposed().is_empty());
        assert!(fw.set_port("vethwepl1", vec![key("10.32.1.2/24")]).is_err());
        assert!(fw.ports().is_empty());
        assert!(!dir.path().join(PORTS_FILE).exists());
    }

    #[test]
    fn ports_are_checked_persisted_and_forgotten_when_their_link_goes() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Mutex::new(Fake::default()));
        fake.lock().unwrap().links =
            BTreeSet::from(["vethwepl1".to_owned(), "vethwepl2".to_owned()]);
        let fw = start(dir.path(), &fake);
        for (name, addrs) in [
            ("vethwepl9", vec![key("10.32.1.2/24")]),
            ("bad\"name", vec![key("10.32.1.2/24")]),
            ("vethwepl1", vec![]),
        ] {
            let e = fw.set_port(name, addrs).unwrap_err();
            assert!(matches!(e, FirewallError::BadRequest(_)), "{name}: {e}");
        }
        fw.set_port("vethwepl1", vec![key("10.32.1.2/24")]).unwrap();
        fw.set_port("vethwepl2", vec![key("10.32.2.2/24")]).unwrap();
        let saved: Persisted =
            serde_json::from_slice(&std::fs::read(dir.path().join(PORTS_FILE)).unwrap()).unwrap();
        assert_eq!(saved.ports["vethwepl1"], vec!["10.32.1.2/24".to_owned()]);
        // Nothing changed, tables there: reconcile does nothing.
        assert!(!fw.reconcile().unwrap());
        // The tables were flushed: re-applied with both ports.
        fake.lock().unwrap().present = false;
        assert!(fw.reconcile().unwrap());
        assert_eq!(fake.lock().unwrap().applied.last().unwrap().ports.len(), 2);
        // A link went away: forgotten, also after a restart.
        fake.lock().unwrap().links.remove("vethwepl2");
        assert!(fw.reconcile().unwrap());
        assert_eq!(fw.ports().len(), 1);
        fake.lock().unwrap().links.remove("vethwepl1");
        let again = start(dir.path(), &fake);
        assert!(again.ports().is_empty());
        assert!(again.remove_port("vethwepl1").is_ok());
    }

    #[test]
    fn a_corrupt_state_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PORTS_FILE), b"{not json").unwrap();
        let fake = Arc::new(Mutex::new(Fake::default()));
        let fw = start(dir.path(), &fake);
        assert!(fw.ports().is_empty());
    }

    #[test]
    fn go_bools() {
        assert_eq!(parse_go_bool("true"), Some(true));
        assert_eq!(parse_go_bool("F"), Some(false));
        assert_eq!(parse_go_bool("yes"), None);
    }
}
