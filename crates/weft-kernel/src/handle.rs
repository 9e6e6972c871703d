//! [`Handle`]: the idempotent operations on links, addresses, routes and sysctls of one
//! network namespace.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::Path;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage as Rt;

use crate::error::{Error, Result};
use crate::msg::{self, LinkChange};
use crate::netns::Netns;
use crate::socket::NlSocket;
use crate::types::{Cidr, IfAddr, Link, LinkKind, MacAddr, Route};

/// Weave's ARP-cache tuning for the bridge and container interfaces (so a MAC change is
/// noticed quickly): `net/ipv4/neigh/<if>/<key>`.
pub const WEAVE_NEIGH_SYSCTLS: [(&str, &str); 3] = [
    ("base_reachable_time", "5"),
    ("delay_first_probe_time", "2"),
    ("ucast_solicit", "1"),
];

/// Checks an interface name the way the kernel will (`dev_valid_name`).
pub fn validate_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("interface name {name:?}")))
    }
}

fn check_mac(mac: Option<MacAddr>) -> Result<()> {
    match mac {
        Some(m) if m.is_multicast() || m.0 == [0; 6] => Err(Error::Invalid(format!(
            "MAC address {m} (multicast or zero)"
        ))),
        _ => Ok(()),
    }
}

/// IP family of a per-interface sysctl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpFamily {
    /// `net/ipv4/…`
    V4,
    /// `net/ipv6/…`
    V6,
}

/// Which per-interface sysctl directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysctlSection {
    /// `net/ipv*/conf/<if>/…` (e.g. `arp_notify`, `accept_ra`, `accept_dad`).
    Conf,
    /// `net/ipv*/neigh/<if>/…` (e.g. `base_reachable_time`).
    Neigh,
}

/// The `/proc/sys` path of a per-interface sysctl.
pub fn link_sysctl_path(
    family: IpFamily,
    section: SysctlSection,
    ifname: &str,
    key: &str,
) -> String {
    let fam = match family {
        IpFamily::V4 => "ipv4",
        IpFamily::V6 => "ipv6",
    };
    let sec = match section {
        SysctlSection::Conf => "conf",
        SysctlSection::Neigh => "neigh",
    };
    format!("/proc/sys/net/{fam}/{sec}/{ifname}/{key}")
}

/// What [`Handle::ensure_veth_pair`] should produce.
#[derive(Clone, Debug)]
pub struct VethPair<'a> {
    /// Host-side name (in the handle's namespace), e.g. `vethwepl1234`.
    pub host: String,
    /// Peer name, e.g. `vethwepg1234`, or directly `ethwe`.
    pub peer: String,
    /// Namespace to create the peer in; `None` keeps it beside the host end.
    pub peer_netns: Option<&'a Netns>,
    /// MTU of both ends (Weave: the bridge's).
    pub mtu: Option<u32>,
    /// MAC of the host end.
    pub host_mac: Option<MacAddr>,
    /// MAC of the peer.
    pub peer_mac: Option<MacAddr>,
    /// Bridge to enslave the host end to.
    pub master: Option<String>,
    /// Bring the host end up.
    pub host_up: bool,
}

impl<'a> VethPair<'a> {
    /// A pair with no options: both ends in this namespace, kernel-chosen MTU and MACs.
    pub fn new(host: &str, peer: &str) -> Self {
        VethPair {
            host: host.to_string(),
            peer: peer.to_string(),
            peer_netns: None,
            mtu: None,
            host_mac: None,
            peer_mac: None,
            master: None,
            host_up: false,
        }
    }
}

/// A netlink connection to one network namespace, and the idempotent operations on it.
///
/// Every `ensure_*` operation succeeds when the object already exists as wanted, corrects
/// attributes that differ, and fails with [`Error::Conflict`] when the name is held by an
/// object of another kind. Operations that create several things undo what they created
/// when a later step fails.
pub struct Handle {
    sock: NlSocket,
    netns: Option<Netns>,
}

impl Handle {
    /// A handle on the calling thread's current namespace.
    pub fn new() -> Result<Handle> {
        Ok(Handle {
            sock: NlSocket::open()?,
            netns: None,
        })
    }

    /// A handle on `netns`: the socket is created inside it (on a helper thread) and stays
    /// bound to it; sysctls are written from inside it too.
    pub fn in_netns(netns: &Netns) -> Result<Handle> {
        let sock = netns.run(NlSocket::open)??;
        Ok(Handle {
            sock,
            netns: Some(netns.try_clone()?),
        })
    }

    /// The namespace this handle works in, if it was opened with one.
    pub fn netns(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }

    /// Runs `f` inside this handle's namespace (on a helper thread when it has one).
    pub fn run_in<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        match &self.netns {
            Some(ns) => ns.run(f),
            None => Ok(f()),
        }
    }

    // ---------------------------------------------------------------- links

    /// All links.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let msgs = self
            .sock
            .dump(Rt::GetLink(Default::default()), "list links", "")?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                Rt::NewLink(l) => Some(msg::parse_link(l)),
                _ => None,
            })
            .collect())
    }

    fn one_link(msgs: Vec<Rt>, op: &'static str, target: &str) -> Result<Link> {
        msgs.iter()
            .find_map(|m| match m {
                Rt::NewLink(l) => Some(msg::parse_link(l)),
                _ => None,
            })
            .ok_or_else(|| Error::protocol(op, target, "no link in reply"))
    }

    /// The link called `name`, or `None`.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        validate_ifname(name)?;
        let op = "get link";
        match self
            .sock
            .request(Rt::GetLink(msg::get_link_by_name(name)), 0, op, name)
        {
            Ok(msgs) => Self::one_link(msgs, op, name).map(Some),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link with index `index`, or `None`.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        let op = "get link";
        let target = format!("#{index}");
        match self
            .sock
            .request(Rt::GetLink(msg::get_link_by_index(index)), 0, op, &target)
        {
            Ok(msgs) => Self::one_link(msgs, op, &target).map(Some),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link called `name`, or [`Error::NotFound`].
    pub fn require_link(&mut self, name: &str) -> Result<Link> {
        self.link_by_name(name)?.ok_or_else(|| Error::NotFound {
            what: "link",
            name: name.to_string(),
        })
    }

    fn change(&mut self, op: &'static str, link: &Link, c: &LinkChange) -> Result<()> {
        if c.is_empty() {
            return Ok(());
        }
        self.sock
            .request(Rt::SetLink(msg::set_link(link.index, c)), 0, op, &link.name)?;
        Ok(())
    }

    /// Brings `name` up (no-op if it is up).
    pub fn set_up(&mut self, name: &str) -> Result<()> {
        let link = self.require_link(name)?;
        if !link.up {
            self.change(
                "set up",
                &link,
                &LinkChange {
                    up: Some(true),
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }

    /// Brings `name` down (no-op if it is down).
    pub fn set_down(&mut self, name: &str) -> Result<()> {
        let link = self.require_link(name)?;
        if link.up {
            self.change(
                "set down",
                &link,
                &LinkChange {
                    up: Some(false),
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }

    /// Sets the MTU of `name`. Always issued (even when equal) so that a bridge records it
    /// as chosen by the user and keeps it when ports with a smaller MTU join.
    pub fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<()> {
        let link = self.require_link(name)?;
        self.change(
            "set mtu",
            &link,
            &LinkChange {
                mtu: Some(mtu),
                ..Default::default()
            },
        )
    }

    /// Sets the MAC address of `name` (no-op if equal).
    pub fn set_mac(&mut self, name: &str, mac: MacAddr) -> Result<()> {
        check_mac(Some(mac))?;
        let link = self.require_link(name)?;
        if link.mac != Some(mac) {
            self.change(
                "set mac",
                &link,
                &LinkChange {
                    mac: Some(mac),
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }

    /// Enslaves `name` to the bridge `bridge` (no-op if it already is). Fails with
    /// [`Error::Conflict`] if `bridge` is not a bridge.
    pub fn set_master(&mut self, name: &str, bridge: &str) -> Result<()> {
        let br = self.require_bridge(bridge)?;
        let link = self.require_link(name)?;
        if link.master != Some(br.index) {
            self.change(
                "set master",
                &link,
                &LinkChange {
                    master: Some(br.index),
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }

    /// Detaches `name` from its bridge (no-op if it has none).
    pub fn set_nomaster(&mut self, name: &str) -> Result<()> {
        let link = self.require_link(name)?;
        if link.master.is_some() {
            self.change(
                "set nomaster",
                &link,
                &LinkChange {
                    master: Some(0),
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }

    /// Renames `old` to `new` (bringing it down for the rename if needed, and back up).
    /// Succeeds without change if `old` is absent and `new` exists.
    pub fn rename_link(&mut self, old: &str, new: &str) -> Result<Link> {
        validate_ifname(new)?;
        let Some(link) = self.link_by_name(old)? else {
            return self.link_by_name(new)?.ok_or_else(|| Error::NotFound {
                what: "link",
                name: old.to_string(),
            });
        };
        if old == new {
            return Ok(link);
        }
        if link.up {
            self.change(
                "rename",
                &link,
                &LinkChange {
                    up: Some(false),
                    ..Default::default()
                },
            )?;
        }
        self.change(
            "rename",
            &link,
            &LinkChange {
                name: Some(new.to_string()),
                ..Default::default()
            },
        )?;
        let renamed = self.require_link(new)?;
        if link.up {
            self.change(
                "rename",
                &renamed,
                &LinkChange {
                    up: Some(true),
                    ..Default::default()
                },
            )?;
        }
        self.require_link(new)
    }

    /// Deletes the link `name`. Returns `false` if it did not exist.
    pub fn delete_link(&mut self, name: &str) -> Result<bool> {
        let Some(link) = self.link_by_name(name)? else {
            return Ok(false);
        };
        match self.sock.request(
            Rt::DelLink(msg::get_link_by_index(link.index)),
            0,
            "delete link",
            name,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn require_bridge(&mut self, name: &str) -> Result<Link> {
        let link = self.require_link(name)?;
        if link.kind != LinkKind::Bridge {
            return Err(Error::Conflict {
                name: name.to_string(),
                wanted: "bridge".into(),
                found: link.kind.to_string(),
            });
        }
        Ok(link)
    }

    /// Ensures a Linux bridge `name` exists, is up, has `mac` and `mtu` when given, and
    /// carries Weave's bridge sysctls (`accept_ra=0` when IPv6 is present, and
    /// [`WEAVE_NEIGH_SYSCTLS`]). The MAC and MTU are set after creation, as Weave does; a
    /// bridge MTU set this way is kept when ports with a smaller MTU join (kernel ≥ 4.17),
    /// so no temporary dummy port is needed. A newly created bridge is deleted again if a
    /// later step fails.
    pub fn ensure_bridge(
        &mut self,
        name: &str,
        mac: Option<MacAddr>,
        mtu: Option<u32>,
    ) -> Result<Link> {
        validate_ifname(name)?;
        check_mac(mac)?;
        let (link, created) = match self.link_by_name(name)? {
            Some(l) if l.kind == LinkKind::Bridge => (l, false),
            Some(l) => {
                return Err(Error::Conflict {
                    name: name.to_string(),
                    wanted: "bridge".into(),
                    found: l.kind.to_string(),
                })
            }
            None => {
                self.sock.request(
                    Rt::NewLink(msg::new_bridge(name)),
                    NLM_F_CREATE | NLM_F_EXCL,
                    "create bridge",
                    name,
                )?;
                (self.require_link(name)?, true)
            }
        };
        let result = self.configure_bridge(&link, mac, mtu, created);
        if result.is_err() && created {
            let _ = self.delete_link(name);
        }
        result
    }

    fn configure_bridge(
        &mut self,
        link: &Link,
        mac: Option<MacAddr>,
        mtu: Option<u32>,
        created: bool,
    ) -> Result<Link> {
        let mut c = LinkChange::default();
        if mac.is_some() && link.mac != mac {
            c.mac = mac;
        }
        // A fresh bridge gets its MTU through SETLINK even when equal, to pin it.
        if mtu.is_some() && (created || Some(link.mtu) != mtu) {
            c.mtu = mtu;
        }
        self.change("configure bridge", link, &c)?;
        self.set_weave_sysctls(&link.name)?;
        if !link.up {
            self.change(
                "set up",
                link,
                &LinkChange {
                    up: Some(true),
                    ..Default::default()
                },
            )?;
        }
        self.require_link(&link.name)
    }

    /// Sets or clears hairpin mode on bridge port `name` (Weave: on for container veths).
    pub fn set_hairpin(&mut self, name: &str, on: bool) -> Result<()> {
        let link = self.require_link(name)?;
        if link.master.is_none() {
            return Err(Error::Invalid(format!("{name} is not a bridge port")));
        }
        self.sock.request(
            Rt::SetLink(msg::set_hairpin(link.index, on)),
            0,
            "set hairpin",
            name,
        )?;
        Ok(())
    }

    // ---------------------------------------------------------------- veth

    /// Ensures the veth pair `spec.host` ⇄ `spec.peer`, the peer living in
    /// `spec.peer_netns` (created there directly, by namespace fd). If the host end exists
    /// and its peer is the wanted link, MTUs, MACs, master and state are corrected; if the
    /// host name is held by anything else, [`Error::Conflict`]. The bridge is checked before
    /// anything is created, and a pair created here is deleted again if a later step fails.
    /// Returns the host end.
    pub fn ensure_veth_pair(&mut self, spec: &VethPair<'_>) -> Result<Link> {
        validate_ifname(&spec.host)?;
        validate_ifname(&spec.peer)?;
        check_mac(spec.host_mac)?;
        check_mac(spec.peer_mac)?;
        let master = match &spec.master {
            Some(b) => Some(self.require_bridge(b)?),
            None => None,
        };
        let existing = self.link_by_name(&spec.host)?;
        let created = match existing {
            Some(host) => {
                if host.kind != LinkKind::Veth {
                    return Err(Error::Conflict {
                        name: spec.host.clone(),
                        wanted: "veth".into(),
                        found: host.kind.to_string(),
                    });
                }
                self.fix_veth_peer(spec, &host)?;
                false
            }
            None => {
                let host = LinkChange {
                    name: Some(spec.host.clone()),
                    mtu: spec.mtu,
                    mac: spec.host_mac,
                    ..Default::default()
                };
                let peer = LinkChange {
                    name: Some(spec.peer.clone()),
                    mtu: spec.mtu,
                    mac: spec.peer_mac,
                    ..Default::default()
                };
                let fd = spec.peer_netns.map(|ns| ns.as_raw_fd());
                let target = format!("{} / {}", spec.host, spec.peer);
                self.sock.request(
                    Rt::NewLink(msg::new_veth(&host, &peer, fd)),
                    NLM_F_CREATE | NLM_F_EXCL,
                    "create veth",
                    &target,
                )?;
                true
            }
        };
        let result = self.configure_veth_host(spec, master.as_ref());
        if result.is_err() && created {
            let _ = self.delete_link(&spec.host);
        }
        result
    }

    fn configure_veth_host(&mut self, spec: &VethPair<'_>, master: Option<&Link>) -> Result<Link> {
        let host = self.require_link(&spec.host)?;
        let mut c = LinkChange::default();
        if spec.mtu.is_some() && Some(host.mtu) != spec.mtu {
            c.mtu = spec.mtu;
        }
        if spec.host_mac.is_some() && host.mac != spec.host_mac {
            c.mac = spec.host_mac;
        }
        if let Some(br) = master {
            if host.master != Some(br.index) {
                c.master = Some(br.index);
            }
        }
        self.change("configure veth", &host, &c)?;
        if spec.host_up && !host.up {
            self.change(
                "set up",
                &host,
                &LinkChange {
                    up: Some(true),
                    ..Default::default()
                },
            )?;
        }
        self.require_link(&spec.host)
    }

    /// For an existing host end: checks that its peer is `spec.peer` in the wanted
    /// namespace, and corrects the peer's MTU and MAC.
    fn fix_veth_peer(&mut self, spec: &VethPair<'_>, host: &Link) -> Result<()> {
        let mut other;
        let peer_handle: &mut Handle = match spec.peer_netns {
            Some(ns) => {
                other = Handle::in_netns(ns)?;
                &mut other
            }
            None => self,
        };
        let peer = match host.peer_index {
            Some(i) => peer_handle.link_by_index(i)?,
            None => None,
        };
        let peer = match peer {
            Some(p)
                if p.kind == LinkKind::Veth
                    && p.name == spec.peer
                    && p.peer_index == Some(host.index) =>
            {
                p
            }
            other => {
                return Err(Error::Conflict {
                    name: spec.host.clone(),
                    wanted: format!("veth peered with {}", spec.peer),
                    found: match other {
                        Some(p) => format!("veth peered with {}", p.name),
                        None => "veth whose peer is elsewhere".into(),
                    },
                })
            }
        };
        let mut c = LinkChange::default();
        if spec.mtu.is_some() && Some(peer.mtu) != spec.mtu {
            c.mtu = spec.mtu;
        }
        if spec.peer_mac.is_some() && peer.mac != spec.peer_mac {
            c.mac = spec.peer_mac;
        }
        peer_handle.change("configure veth peer", &peer, &c)
    }

    // ---------------------------------------------------------------- addresses

    /// Addresses on `link` (all links when `None`).
    pub fn list_addrs(&mut self, link: Option<&str>) -> Result<Vec<IfAddr>> {
        let index = match link {
            Some(name) => self.require_link(name)?.index,
            None => 0,
        };
        let msgs = self.sock.dump(
            Rt::GetAddress(msg::get_addrs(index)),
            "list addresses",
            link.unwrap_or(""),
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                Rt::NewAddress(a) => msg::parse_addr(a),
                _ => None,
            })
            .filter(|a| index == 0 || a.index == index)
            .collect())
    }

    /// Ensures `cidr` is on `link`. Returns `true` if it was added, `false` if present.
    pub fn ensure_addr(&mut self, link: &str, cidr: Cidr) -> Result<bool> {
        let l = self.require_link(link)?;
        if self.list_addrs(Some(link))?.iter().any(|a| a.cidr == cidr) {
            return Ok(false);
        }
        let target = format!("{cidr} dev {link}");
        match self.sock.request(
            Rt::NewAddress(msg::addr(l.index, &cidr)),
            NLM_F_CREATE | NLM_F_EXCL,
            "add address",
            &target,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes `cidr` from `link`. Returns `false` if it was not there (or the link is gone).
    pub fn remove_addr(&mut self, link: &str, cidr: Cidr) -> Result<bool> {
        let Some(l) = self.link_by_name(link)? else {
            return Ok(false);
        };
        if !self.list_addrs(Some(link))?.iter().any(|a| a.cidr == cidr) {
            return Ok(false);
        }
        let target = format!("{cidr} dev {link}");
        match self.sock.request(
            Rt::DelAddress(msg::addr(l.index, &cidr)),
            0,
            "remove address",
            &target,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(libc::EADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // ---------------------------------------------------------------- routes

    fn route_oif(&mut self, r: &Route) -> Result<Option<u32>> {
        match &r.dev {
            Some(d) => Ok(Some(self.require_link(d)?.index)),
            None => Ok(None),
        }
    }

    /// Ensures `route` is in the main table (`ip route replace`): a route with the same
    /// destination and metric is replaced, so differing attributes are corrected.
    pub fn ensure_route(&mut self, route: &Route) -> Result<()> {
        let oif = self.route_oif(route)?;
        self.sock.request(
            Rt::NewRoute(msg::route(route, oif)),
            NLM_F_CREATE | NLM_F_REPLACE,
            "replace route",
            &route.dst.to_string(),
        )?;
        Ok(())
    }

    /// Removes `route`. Returns `false` if there was no such route.
    pub fn remove_route(&mut self, route: &Route) -> Result<bool> {
        let oif = match &route.dev {
            Some(d) => match self.link_by_name(d)? {
                Some(l) => Some(l.index),
                None => return Ok(false),
            },
            None => None,
        };
        match self.sock.request(
            Rt::DelRoute(msg::route(route, oif)),
            0,
            "remove route",
            &route.dst.to_string(),
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Unicast routes of the main table, IPv4 or IPv6, with device names filled in.
    pub fn list_routes(&mut self, v6: bool) -> Result<Vec<Route>> {
        let msgs = self
            .sock
            .dump(Rt::GetRoute(msg::get_routes(v6)), "list routes", "")?;
        let names: HashMap<u32, String> = self
            .links()?
            .into_iter()
            .map(|l| (l.index, l.name))
            .collect();
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                Rt::NewRoute(r) => msg::parse_route(r),
                _ => None,
            })
            .map(|(mut r, oif)| {
                r.dev = oif.and_then(|i| names.get(&i).cloned());
                r
            })
            .collect())
    }

    // ---------------------------------------------------------------- sysctls

    /// Writes `value` to the sysctl file `path` (under `/proc/sys`) inside this handle's
    /// namespace; `/proc/sys/net` shows the writing thread's namespace.
    pub fn write_sysctl(&self, path: &str, value: &str) -> Result<()> {
        if !path.starts_with("/proc/sys/") || path.contains("..") {
            return Err(Error::Invalid(format!("sysctl path {path:?}")));
        }
        let p = path.to_string();
        let v = value.to_string();
        self.run_in(move || std::fs::write(&p, v.as_bytes()))?
            .map_err(|e| Error::io("write sysctl", path, e))
    }

    /// Reads the sysctl file `path` inside this handle's namespace (trimmed).
    pub fn read_sysctl(&self, path: &str) -> Result<String> {
        let p = path.to_string();
        self.run_in(move || std::fs::read_to_string(&p))?
            .map(|s| s.trim().to_string())
            .map_err(|e| Error::io("read sysctl", path, e))
    }

    /// Sets a per-interface sysctl, e.g. `(V4, Conf, "ethwe", "arp_notify", "1")`.
    pub fn set_link_sysctl(
        &self,
        family: IpFamily,
        section: SysctlSection,
        ifname: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        validate_ifname(ifname)?;
        if key.is_empty() || key.contains('/') {
            return Err(Error::Invalid(format!("sysctl key {key:?}")));
        }
        self.write_sysctl(&link_sysctl_path(family, section, ifname, key), value)
    }

    /// Weave's per-interface settings for the bridge and container interfaces:
    /// `ipv6/conf/<if>/accept_ra = 0` (skipped when IPv6 is absent) and the ARP tuning of
    /// [`WEAVE_NEIGH_SYSCTLS`].
    pub fn set_weave_sysctls(&self, ifname: &str) -> Result<()> {
        let ra = link_sysctl_path(IpFamily::V6, SysctlSection::Conf, ifname, "accept_ra");
        let ra_check = ra.clone();
        if self.run_in(move || Path::new(&ra_check).exists())? {
            self.write_sysctl(&ra, "0")?;
        }
        for (key, value) in WEAVE_NEIGH_SYSCTLS {
            self.set_link_sysctl(IpFamily::V4, SysctlSection::Neigh, ifname, key, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert!(validate_ifname("vethwepl1234567").is_ok());
        for bad in ["", "a/b", "a b", "a:b", ".", "..", "0123456789abcdef"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            link_sysctl_path(IpFamily::V6, SysctlSection::Conf, "ethwe", "accept_dad"),
            "/proc/sys/net/ipv6/conf/ethwe/accept_dad"
        );
        assert!(check_mac(Some(MacAddr([1, 0, 0, 0, 0, 0]))).is_err());
        assert!(check_mac(Some(MacAddr([0; 6]))).is_err());
        assert!(check_mac(Some(MacAddr([2, 0, 0, 0, 0, 1]))).is_ok());
    }
}
