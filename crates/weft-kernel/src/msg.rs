//! Pure builders and parsers between weft's types and rtnetlink messages. Nothing here
//! touches the kernel, so it is unit-tested without root.

use std::net::IpAddr;
use std::os::fd::RawFd;

use netlink_packet_core::DefaultNla;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    LinkProtoInfoBridge,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::AddressFamily;

use crate::types::{Cidr, IfAddr, Link, LinkKind, MacAddr, Route, Scope};

/// `IFLA_BRPORT_MODE`: the hairpin flag of a bridge port.
const IFLA_BRPORT_MODE: u16 = 4;

/// Attribute changes for `RTM_SETLINK` / `RTM_NEWLINK`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkChange {
    pub name: Option<String>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    /// `Some(0)` detaches from any controller.
    pub master: Option<u32>,
    pub up: Option<bool>,
}

impl LinkChange {
    pub fn is_empty(&self) -> bool {
        *self == LinkChange::default()
    }
}

fn apply_change(msg: &mut LinkMessage, c: &LinkChange) {
    if let Some(name) = &c.name {
        msg.attributes.push(LinkAttribute::IfName(name.clone()));
    }
    if let Some(mtu) = c.mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = c.mac {
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(m) = c.master {
        msg.attributes.push(LinkAttribute::Controller(m));
    }
    if let Some(up) = c.up {
        msg.header.change_mask = LinkFlags::Up;
        msg.header.flags = if up {
            LinkFlags::Up
        } else {
            LinkFlags::empty()
        };
    }
}

/// `RTM_SETLINK` on interface `index`.
pub(crate) fn set_link(index: u32, c: &LinkChange) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    apply_change(&mut msg, c);
    msg
}

/// `RTM_GETLINK` by name.
pub(crate) fn get_link_by_name(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg
}

/// `RTM_GETLINK` by index.
pub(crate) fn get_link_by_index(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

/// `RTM_NEWLINK` for a bridge called `name`.
pub(crate) fn new_bridge(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    msg
}

/// `RTM_NEWLINK` for a veth pair; the peer is created directly in the namespace
/// `peer_netns` when given.
pub(crate) fn new_veth(
    host: &LinkChange,
    peer: &LinkChange,
    peer_netns: Option<RawFd>,
) -> LinkMessage {
    let mut peer_msg = LinkMessage::default();
    apply_change(&mut peer_msg, peer);
    if let Some(fd) = peer_netns {
        peer_msg.attributes.push(LinkAttribute::NetNsFd(fd));
    }
    let mut msg = LinkMessage::default();
    apply_change(&mut msg, host);
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
    ]));
    msg
}

/// `RTM_SETLINK` (family `AF_BRIDGE`) setting the hairpin flag of bridge port `index`.
pub(crate) fn set_hairpin(index: u32, on: bool) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.interface_family = AddressFamily::Bridge;
    msg.header.index = index;
    msg.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
        LinkProtoInfoBridge::Other(DefaultNla::new(IFLA_BRPORT_MODE, vec![u8::from(on)])),
    ]));
    msg
}

/// Reads a kernel link message into a [`Link`].
pub(crate) fn parse_link(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        kind: LinkKind::None,
        mac: None,
        mtu: 0,
        up: msg.header.flags.contains(LinkFlags::Up),
        master: None,
        peer_index: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Address(a) => link.mac = MacAddr::try_from(a.as_slice()).ok(),
            LinkAttribute::Controller(m) if *m != 0 => link.master = Some(*m),
            LinkAttribute::Link(p) if *p != 0 => link.peer_index = Some(*p),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(k) = info {
                        link.kind = match k {
                            InfoKind::Bridge => LinkKind::Bridge,
                            InfoKind::Veth => LinkKind::Veth,
                            InfoKind::Tun => LinkKind::Tun,
                            InfoKind::Dummy => LinkKind::Dummy,
                            other => LinkKind::Other(other.to_string()),
                        };
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn family_of(ip: &IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// `RTM_NEWADDR` / `RTM_DELADDR` for `cidr` on interface `index`.
pub(crate) fn addr(index: u32, cidr: &Cidr) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family_of(&cidr.addr());
    msg.header.prefix_len = cidr.prefix();
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Address(cidr.addr()));
    if cidr.addr().is_ipv4() {
        msg.attributes.push(AddressAttribute::Local(cidr.addr()));
        if let Some(b) = cidr.broadcast_v4() {
            msg.attributes.push(AddressAttribute::Broadcast(b));
        }
    }
    msg
}

/// `RTM_GETADDR` dump filtered (with strict checking) to interface `index`.
pub(crate) fn get_addrs(index: u32) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg
}

/// Reads a kernel address message. IPv4 reports the interface's own address in
/// `IFA_LOCAL` (`IFA_ADDRESS` is the peer on point-to-point links), so it wins.
pub(crate) fn parse_addr(msg: &AddressMessage) -> Option<IfAddr> {
    let mut address = None;
    let mut local = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Local(a) => local = Some(*a),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    let cidr = Cidr::new(ip, msg.header.prefix_len).ok()?;
    Some(IfAddr {
        index: msg.header.index,
        cidr,
    })
}

/// `RTM_NEWROUTE` / `RTM_DELROUTE` for `route` in the main table, output device `oif`.
pub(crate) fn route(route: &Route, oif: Option<u32>) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let dst = route.dst;
    msg.header.address_family = family_of(&dst.addr());
    msg.header.destination_prefix_length = dst.prefix();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.kind = RouteType::Unicast;
    let scope = route.scope.unwrap_or(if route.gateway.is_some() {
        Scope::Universe
    } else {
        Scope::Link
    });
    msg.header.scope = match scope {
        Scope::Universe => RouteScope::Universe,
        Scope::Link => RouteScope::Link,
        Scope::Host => RouteScope::Host,
    };
    if dst.prefix() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(
                dst.network(),
            )));
    }
    if let Some(gw) = route.gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
    }
    if let Some(src) = route.src {
        msg.attributes
            .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    if let Some(oif) = oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(m) = route.metric {
        msg.attributes.push(RouteAttribute::Priority(m));
    }
    msg
}

/// `RTM_GETROUTE` dump for one family.
pub(crate) fn get_routes(v6: bool) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    msg
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Reads a main-table unicast route; other tables and types give `None`. The device is
/// returned as an index for the caller to name.
pub(crate) fn parse_route(msg: &RouteMessage) -> Option<(Route, Option<u32>)> {
    let mut table = u32::from(msg.header.table);
    let mut dst = None;
    let mut gateway = None;
    let mut src = None;
    let mut oif = None;
    let mut metric = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dst = route_ip(a),
            RouteAttribute::Gateway(a) => gateway = route_ip(a),
            RouteAttribute::PrefSource(a) => src = route_ip(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = Some(*p),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) || msg.header.kind != RouteType::Unicast {
        return None;
    }
    let unspecified = match msg.header.address_family {
        AddressFamily::Inet => IpAddr::V4([0, 0, 0, 0].into()),
        AddressFamily::Inet6 => IpAddr::V6(0u128.into()),
        _ => return None,
    };
    let dst = Cidr::new(
        dst.unwrap_or(unspecified),
        msg.header.destination_prefix_length,
    )
    .ok()?;
    let scope = match msg.header.scope {
        RouteScope::Universe => Some(Scope::Universe),
        RouteScope::Link => Some(Scope::Link),
        RouteScope::Host => Some(Scope::Host),
        _ => None,
    };
    Some((
        Route {
            dst,
            dev: None,
            gateway,
            src,
            scope,
            metric,
        },
        oif,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, NlaBuffer, Parseable};

    fn roundtrip_link(msg: &LinkMessage) -> LinkMessage {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        LinkMessage::parse(buf.as_slice()).expect("reparse")
    }

    #[test]
    fn bridge_message() {
        let msg = new_bridge("weave");
        let back = parse_link(&roundtrip_link(&msg));
        assert_eq!(back.name, "weave");
        assert_eq!(back.kind, LinkKind::Bridge);
    }

    #[test]
    fn veth_message_carries_peer_and_netns() {
        let host = LinkChange {
            name: Some("vethwepl123".into()),
            mtu: Some(1376),
            ..Default::default()
        };
        let peer = LinkChange {
            name: Some("ethwe".into()),
            mtu: Some(1376),
            mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
            ..Default::default()
        };
        let msg = new_veth(&host, &peer, Some(42));
        let info = msg
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i),
                _ => None,
            })
            .expect("linkinfo");
        assert_eq!(info[0], LinkInfo::Kind(InfoKind::Veth));
        let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) = &info[1] else {
            panic!("no peer: {info:?}");
        };
        assert!(p.attributes.contains(&LinkAttribute::NetNsFd(42)));
        assert!(p
            .attributes
            .contains(&LinkAttribute::IfName("ethwe".into())));
        assert!(p
            .attributes
            .contains(&LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1])));
        let back = parse_link(&roundtrip_link(&msg));
        assert_eq!((back.name.as_str(), back.mtu), ("vethwepl123", 1376));
    }

    #[test]
    fn set_link_flags() {
        let m = set_link(
            7,
            &LinkChange {
                up: Some(true),
                master: Some(3),
                ..Default::default()
            },
        );
        assert_eq!(m.header.index, 7);
        assert_eq!(m.header.change_mask, LinkFlags::Up);
        assert_eq!(m.header.flags, LinkFlags::Up);
        assert!(m.attributes.contains(&LinkAttribute::Controller(3)));
        let down = set_link(
            7,
            &LinkChange {
                up: Some(false),
                ..Default::default()
            },
        );
        assert_eq!(down.header.flags, LinkFlags::empty());
        assert!(LinkChange::default().is_empty());
    }

    #[test]
    fn hairpin_is_nested_protinfo() {
        let m = set_hairpin(5, true);
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        // ifinfomsg is 16 bytes; then one NLA: IFLA_PROTINFO (12) | NLA_F_NESTED.
        let nla = NlaBuffer::new(&buf[16..]);
        assert_eq!(nla.kind(), 12);
        assert!(nla.nested_flag());
        let inner = NlaBuffer::new(nla.value());
        assert_eq!(inner.kind(), IFLA_BRPORT_MODE);
        assert_eq!(inner.value()[0], 1);
        assert_eq!(buf[0], libc::AF_BRIDGE as u8);
    }

    #[test]
    fn address_message() {
        let c: Cidr = "10.32.0.5/12".parse().unwrap();
        let m = addr(9, &c);
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert_eq!(m.header.prefix_len, 12);
        assert!(m
            .attributes
            .contains(&AddressAttribute::Broadcast([10, 47, 255, 255].into())));
        assert_eq!(parse_addr(&m), Some(IfAddr { index: 9, cidr: c }));
        let v6: Cidr = "fd00::5/64".parse().unwrap();
        let m6 = addr(9, &v6);
        assert_eq!(m6.header.family, AddressFamily::Inet6);
        assert_eq!(parse_addr(&m6).unwrap().cidr, v6);
    }

    #[test]
    fn route_messages() {
        let mc = Route::multicast("ethwe");
        let m = route(&mc, Some(4));
        assert_eq!(m.header.destination_prefix_length, 4);
        assert_eq!(m.header.scope, RouteScope::Link);
        assert_eq!(m.header.table, RouteHeader::RT_TABLE_MAIN);
        assert!(m.attributes.contains(&RouteAttribute::Oif(4)));
        let (back, oif) = parse_route(&m).unwrap();
        assert_eq!(
            (back.dst, back.scope, oif),
            (mc.dst, Some(Scope::Link), Some(4))
        );

        let def = Route::via(
            "0.0.0.0/0".parse().unwrap(),
            "10.32.0.1".parse().unwrap(),
            None,
        );
        let m = route(&def, None);
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Destination(_))));
        let (back, _) = parse_route(&m).unwrap();
        assert_eq!(back.dst.to_string(), "0.0.0.0/0");
        assert_eq!(back.gateway, def.gateway);

        // Host bits of the destination are cleared, as the kernel requires.
        let m = route(&Route::dev("10.32.7.9/12".parse().unwrap(), "x"), Some(1));
        assert!(m
            .attributes
            .contains(&RouteAttribute::Destination(RouteAddress::Inet(
                [10, 32, 0, 0].into()
            ))));
    }
}
