//! weft-kernel against the real kernel. Needs root. Every test works only inside network
//! namespaces it creates (`wk-<tag>-<pid>`), removed by a guard even when the test panics;
//! the root namespace is never changed.

use std::process::Command;

use weft_kernel::{
    Cidr, Error, Handle, IpFamily, LinkKind, MacAddr, Netns, Offload, Route, SysctlSection,
    TapConfig, VethPair,
};

/// A namespace made with `ip netns add`, deleted on drop.
struct TestNs {
    name: String,
    ns: Netns,
}

impl TestNs {
    fn new(tag: &str) -> TestNs {
        assert!(
            nix::unistd::geteuid().is_root(),
            "weft-kernel tests must run as root"
        );
        let name = format!("wk-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip");
        assert!(st.success(), "ip netns add {name}");
        // The guard exists before anything can fail, so the namespace is always removed.
        let ns = match Netns::named(&name) {
            Ok(ns) => ns,
            Err(e) => {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
                panic!("open {name}: {e}");
            }
        };
        TestNs { name, ns }
    }

    fn handle(&self) -> Handle {
        self.ns.handle().expect("handle in test namespace")
    }

    /// Runs `nft` inside the namespace (checks and test set-up only); its stdout.
    fn nft(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft"])
            .args(args)
            .output()
            .expect("run nft");
        assert!(out.status.success(), "nft {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `ip` inside the namespace (checks only).
    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip -n {} {args:?}: {:?}",
            self.name,
            out
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn mac(s: &str) -> MacAddr {
    s.parse().expect("mac")
}

fn cidr(s: &str) -> Cidr {
    s.parse().expect("cidr")
}

fn ns_inode(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("stat ns").ino()
}

#[test]
fn netns_run_never_moves_the_caller() {
    let t = TestNs::new("run");
    let before = ns_inode("/proc/thread-self/ns/net");
    let inside =
        t.ns.run(|| ns_inode("/proc/thread-self/ns/net"))
            .expect("run");
    assert_eq!(inside, ns_inode(&format!("/run/netns/{}", t.name)));
    assert_ne!(inside, before);
    assert_eq!(ns_inode("/proc/thread-self/ns/net"), before);
    // A handle in the namespace sees only its loopback.
    let links = t.handle().links().expect("links");
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].name, "lo");
    assert!(Netns::named("a/b").is_err());
    assert!(Netns::of_pid(std::process::id()).is_ok());
}

#[test]
fn bridge_is_idempotent_and_fixed_up() {
    let t = TestNs::new("br");
    let mut h = t.handle();
    let m1 = mac("7a:11:22:33:44:55");
    let b1 = h
        .ensure_bridge("weave", Some(m1), Some(65535))
        .expect("create");
    assert_eq!(b1.kind, LinkKind::Bridge);
    assert_eq!((b1.mac, b1.mtu, b1.up), (Some(m1), 65535, true));
    let b2 = h
        .ensure_bridge("weave", Some(m1), Some(65535))
        .expect("again");
    assert_eq!(b1, b2, "second ensure changes nothing");
    assert_eq!(
        h.links()
            .unwrap()
            .iter()
            .filter(|l| l.name == "weave")
            .count(),
        1
    );

    // Changed MAC and MTU are corrected in place.
    let m2 = mac("7a:aa:bb:cc:dd:ee");
    let b3 = h.ensure_bridge("weave", Some(m2), Some(1376)).expect("fix");
    assert_eq!((b3.index, b3.mac, b3.mtu), (b1.index, Some(m2), 1376));
    // Down bridge is brought up again.
    h.set_down("weave").unwrap();
    assert!(h.ensure_bridge("weave", None, None).unwrap().up);

    // Weave's sysctls were written inside the namespace.
    let p = weft_kernel::link_sysctl_path(
        IpFamily::V4,
        SysctlSection::Neigh,
        "weave",
        "base_reachable_time",
    );
    assert_eq!(h.read_sysctl(&p).unwrap(), "5");
    let p =
        weft_kernel::link_sysctl_path(IpFamily::V4, SysctlSection::Neigh, "weave", "ucast_solicit");
    assert_eq!(h.read_sysctl(&p).unwrap(), "1");

    // The bridge MTU is pinned: a port with a smaller MTU does not lower it.
    h.ensure_bridge("weave", None, Some(65535)).unwrap();
    let mut spec = VethPair::new("vethwe-bridge", "vethwe-pcap");
    spec.mtu = Some(1500);
    spec.master = Some("weave".into());
    spec.host_up = true;
    h.ensure_veth_pair(&spec).expect("port");
    assert_eq!(h.require_link("weave").unwrap().mtu, 65535);
}

#[test]
fn conflicting_names_are_refused() {
    let t = TestNs::new("conf");
    // (This kernel may lack the dummy driver: a veth end holds the name instead.)
    t.ip(&[
        "link", "add", "weave", "type", "veth", "peer", "name", "weave-p",
    ]);
    let mut h = t.handle();
    let err = h.ensure_bridge("weave", None, None).unwrap_err();
    match &err {
        Error::Conflict {
            name,
            wanted,
            found,
        } => {
            assert_eq!(
                (name.as_str(), wanted.as_str(), found.as_str()),
                ("weave", "bridge", "veth")
            );
        }
        other => panic!("wanted a conflict, got {other}"),
    }
    assert!(err.to_string().contains("weave"), "{err}");
    // The veth is untouched.
    assert_eq!(h.require_link("weave").unwrap().kind, LinkKind::Veth);
    // A veth whose peer is not the wanted one, and a TAP on the veth's name, are refused;
    // set_master refuses a non-bridge.
    assert!(matches!(
        h.ensure_veth_pair(&VethPair::new("weave", "p")),
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        h.create_tap(&TapConfig::new("weave")),
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        h.set_master("weave-p", "weave"),
        Err(Error::Conflict { .. })
    ));
    let (tap, _) = h.create_tap(&TapConfig::new("tap0")).unwrap();
    assert!(matches!(
        h.ensure_bridge("tap0", None, None),
        Err(Error::Conflict { .. })
    ));
    drop(tap);
}

#[test]
fn veth_into_container_namespace() {
    let host = TestNs::new("vh");
    let cont = TestNs::new("vc");
    let mut h = host.handle();
    let mut c = cont.handle();
    h.ensure_bridge("weave", Some(mac("7a:00:00:00:00:01")), Some(65535))
        .unwrap();

    let mut spec = VethPair::new("vethwepl42", "vethwepg42");
    spec.peer_netns = Some(&cont.ns);
    spec.mtu = Some(65535);
    spec.master = Some("weave".into());
    spec.host_up = true;
    let hl = h.ensure_veth_pair(&spec).expect("create pair");
    let br = h.require_link("weave").unwrap();
    assert_eq!(
        (hl.kind.clone(), hl.master, hl.mtu, hl.up),
        (LinkKind::Veth, Some(br.index), 65535, true)
    );
    // The peer is in the container namespace only.
    assert!(h.link_by_name("vethwepg42").unwrap().is_none());
    let peer = c.require_link("vethwepg42").unwrap();
    assert_eq!((peer.mtu, peer.peer_index), (65535, Some(hl.index)));

    // Renamed to ethwe as Weave does; renaming again is a no-op.
    let eth = c.rename_link("vethwepg42", "ethwe").unwrap();
    assert_eq!(eth.index, peer.index);
    assert_eq!(
        c.rename_link("vethwepg42", "ethwe").unwrap().index,
        peer.index
    );

    // Ensuring the pair again (with the final peer name) changes nothing but the drift.
    spec.peer = "ethwe".into();
    assert_eq!(h.ensure_veth_pair(&spec).unwrap().index, hl.index);
    c.set_mtu("ethwe", 1500).unwrap();
    spec.peer_mac = Some(mac("7a:00:00:00:00:42"));
    h.ensure_veth_pair(&spec).unwrap();
    let eth = c.require_link("ethwe").unwrap();
    assert_eq!((eth.mtu, eth.mac), (65535, spec.peer_mac));
    // A wrong peer name is a conflict, not a silent success.
    let mut wrong = spec.clone();
    wrong.peer = "eth0".into();
    assert!(matches!(
        h.ensure_veth_pair(&wrong),
        Err(Error::Conflict { .. })
    ));

    // Container-side sysctls, inside the container namespace.
    c.set_weave_sysctls("ethwe").unwrap();
    c.set_link_sysctl(
        IpFamily::V4,
        SysctlSection::Conf,
        "ethwe",
        "arp_notify",
        "1",
    )
    .unwrap();
    let p = weft_kernel::link_sysctl_path(IpFamily::V4, SysctlSection::Conf, "ethwe", "arp_notify");
    assert_eq!(c.read_sysctl(&p).unwrap(), "1");
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        c.set_link_sysctl(
            IpFamily::V6,
            SysctlSection::Conf,
            "ethwe",
            "accept_dad",
            "0",
        )
        .unwrap();
        let p =
            weft_kernel::link_sysctl_path(IpFamily::V6, SysctlSection::Conf, "ethwe", "accept_ra");
        assert_eq!(c.read_sysctl(&p).unwrap(), "0");
    }
    // The host namespace has no ethwe, so the same write there fails.
    assert!(h
        .set_link_sysctl(
            IpFamily::V4,
            SysctlSection::Conf,
            "ethwe",
            "arp_notify",
            "1"
        )
        .is_err());

    // Hairpin on the host end.
    h.set_hairpin("vethwepl42", true).unwrap();
    assert!(host
        .ip(&["-d", "link", "show", "vethwepl42"])
        .contains("hairpin on"));

    // Addresses: added once.
    let a1 = cidr("10.32.0.5/12");
    let a2 = cidr("10.40.1.9/16");
    assert!(c.ensure_addr("ethwe", a1).unwrap());
    assert!(!c.ensure_addr("ethwe", a1).unwrap());
    assert!(c.ensure_addr("ethwe", a2).unwrap());
    let addrs: Vec<Cidr> = c
        .list_addrs(Some("ethwe"))
        .unwrap()
        .iter()
        .map(|a| a.cidr)
        .collect();
    assert!(addrs.contains(&a1) && addrs.contains(&a2), "{addrs:?}");
    assert!(cont
        .ip(&["addr", "show", "dev", "ethwe"])
        .contains("10.32.0.5/12 brd 10.47.255.255"));
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        let v6 = cidr("fd00:a::5/64");
        assert!(c.ensure_addr("ethwe", v6).unwrap());
        assert!(!c.ensure_addr("ethwe", v6).unwrap());
        assert!(c.list_addrs(None).unwrap().iter().any(|a| a.cidr == v6));
        assert!(c.remove_addr("ethwe", v6).unwrap());
    }
    // Nothing leaked to the host side of the pair.
    assert!(h
        .list_addrs(Some("vethwepl42"))
        .unwrap()
        .iter()
        .all(|a| a.cidr.addr().is_ipv6()));
    c.set_up("ethwe").unwrap();

    // Routes: multicast, default via, a subnet route; ensure twice.
    let routes = [
        Route::multicast("ethwe"),
        Route::via(
            cidr("0.0.0.0/0"),
            "10.32.0.1".parse().unwrap(),
            Some("ethwe"),
        ),
        Route::dev(cidr("10.96.0.0/12"), "ethwe"),
    ];
    for _ in 0..2 {
        for r in &routes {
            c.ensure_route(r).unwrap_or_else(|e| panic!("{r:?}: {e}"));
        }
    }
    let table = c.list_routes(false).unwrap();
    for r in &routes {
        let n = table
            .iter()
            .filter(|t| t.dst == r.dst && t.dev.as_deref() == Some("ethwe"))
            .count();
        assert_eq!(n, 1, "{r:?} in {table:?}");
    }
    let shown = cont.ip(&["route", "show"]);
    assert!(
        shown.contains("224.0.0.0/4 dev ethwe scope link"),
        "{shown}"
    );
    assert!(shown.contains("default via 10.32.0.1 dev ethwe"), "{shown}");

    // Removal is idempotent too.
    assert!(c.remove_route(&routes[0]).unwrap());
    assert!(!c.remove_route(&routes[0]).unwrap());
    assert!(c.remove_addr("ethwe", a2).unwrap());
    assert!(!c.remove_addr("ethwe", a2).unwrap());
    assert!(!c.remove_addr("nothere", a2).unwrap());

    // Deleting the host end removes the container end (detach).
    assert!(h.delete_link("vethwepl42").unwrap());
    assert!(c.link_by_name("ethwe").unwrap().is_none());
}

#[test]
fn delete_absent_link_is_ok() {
    let t = TestNs::new("del");
    let mut h = t.handle();
    assert!(!h.delete_link("nope").unwrap());
    t.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d0-p"]);
    assert!(h.delete_link("d0").unwrap());
    assert!(!h.delete_link("d0").unwrap());
    assert!(h.link_by_name("d0").unwrap().is_none());
    assert!(
        h.link_by_name("d0-p").unwrap().is_none(),
        "the peer went with it"
    );
    assert!(matches!(h.set_up("d0"), Err(Error::NotFound { .. })));
}

#[test]
fn tap_on_the_bridge() {
    let t = TestNs::new("tap");
    let mut h = t.handle();
    let br = h.ensure_bridge("weave", None, Some(65535)).unwrap();
    let cfg = TapConfig {
        name: "weft-tap".into(),
        vnet_hdr: true,
        multi_queue: true,
        offload: Offload {
            csum: true,
            tso4: true,
            tso6: true,
        },
        master: Some("weave".into()),
        mtu: Some(65535),
        up: true,
    };
    // A TAP's MTU is at most 65535 minus its Ethernet header: the failed step removes it.
    let err = h.create_tap(&cfg).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");
    assert!(h.link_by_name("weft-tap").unwrap().is_none());
    let cfg = TapConfig {
        mtu: Some(65521),
        ..cfg
    };
    let (tap, link) = h.create_tap(&cfg).expect("tap");
    assert_eq!(
        (link.kind.clone(), link.master, link.up, link.mtu),
        (LinkKind::Tun, Some(br.index), true, 65521)
    );
    assert!(tap.vnet_hdr());
    assert!(t.ip(&["-d", "link", "show", "weft-tap"]).contains("tap"));
    let q2 = tap.open_queue(&h).expect("second queue");
    tap.set_offload(Offload::default()).unwrap();
    // Ensuring again joins the existing multi-queue device.
    let (q3, again) = h.create_tap(&cfg).expect("again");
    assert_eq!(again.index, link.index);
    drop((tap, q2, q3));
    // Non-persistent: gone with its descriptors.
    assert!(h.link_by_name("weft-tap").unwrap().is_none());

    let bad = TapConfig {
        offload: Offload {
            csum: true,
            ..Default::default()
        },
        ..TapConfig::new("t2")
    };
    assert!(matches!(h.create_tap(&bad), Err(Error::Invalid(_))));
    let nobr = TapConfig {
        master: Some("nobridge".into()),
        ..TapConfig::new("t3")
    };
    assert!(h.create_tap(&nobr).is_err());
    assert!(h.link_by_name("t3").unwrap().is_none());
}

#[test]
fn failures_leave_nothing_behind() {
    let host = TestNs::new("fh");
    let cont = TestNs::new("fc");
    let mut h = host.handle();
    h.ensure_bridge("weave", None, None).unwrap();
    let count = |h: &mut Handle| h.links().unwrap().len();
    let n0 = count(&mut h);

    // Target namespace missing: nothing is created.
    let missing = Netns::named(&format!("wk-missing-{}", std::process::id()));
    assert!(missing.is_err());
    // Missing bridge: checked before creation.
    let mut spec = VethPair::new("vethwepl1", "vethwepg1");
    spec.peer_netns = Some(&cont.ns);
    spec.master = Some("nobridge".into());
    assert!(matches!(
        h.ensure_veth_pair(&spec),
        Err(Error::NotFound { .. })
    ));
    // Peer name taken inside the container: the kernel refuses the whole pair.
    cont.ip(&[
        "link", "add", "ethwe", "type", "veth", "peer", "name", "ethwe-p",
    ]);
    spec.master = Some("weave".into());
    spec.peer = "ethwe".into();
    let err = h.ensure_veth_pair(&spec).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
    // MTU beyond what veth allows.
    spec.peer = "vethwepg1".into();
    spec.mtu = Some(70000);
    assert!(h.ensure_veth_pair(&spec).is_err());
    assert_eq!(count(&mut h), n0);
    assert!(h.link_by_name("vethwepl1").unwrap().is_none());
    assert_eq!(
        cont.handle().links().unwrap().len(),
        3,
        "lo and the ethwe veth pair only"
    );

    // A bridge whose configuration fails after creation is removed again.
    let err = h.ensure_bridge("br2", None, Some(70000)).unwrap_err();
    assert!(err.errno().is_some(), "{err}");
    assert!(h.link_by_name("br2").unwrap().is_none());
    // …but an existing one is left as it was.
    let before = h.require_link("weave").unwrap();
    assert!(h.ensure_bridge("weave", None, Some(70000)).is_err());
    assert_eq!(h.require_link("weave").unwrap(), before);
}

/// weft's nftables tables in a test namespace: applied atomically, idempotent, a flush is
/// detected, a bad ruleset changes nothing, delete removes both tables.
#[test]
fn nft_ruleset_apply_detect_flush_and_delete() {
    use weft_kernel::nft::{self, CidrKey, Exposed, PortAddrs, Ruleset};
    let t = TestNs::new("nft");
    let key = |s: &str| CidrKey::v4(s.parse().unwrap()).unwrap();
    let mut r = Ruleset::new("weave");
    r.exposed.push(Exposed {
        cidr: key("10.32.1.254/24"),
        nat: true,
    });
    for i in 0..1000u32 {
        r.ports.push(PortAddrs {
            ifname: format!("vethwepl{i:07x}"),
            addrs: vec![CidrKey {
                addr: std::net::Ipv4Addr::from(0x0a20_0000 + i),
                prefix: 24,
            }],
        });
    }
    let h = t.handle();
    let run = |f: &(dyn Fn() -> weft_kernel::Result<bool> + Sync)| h.run_in(f).unwrap().unwrap();
    assert!(!run(&nft::ruleset_present));
    let started = std::time::Instant::now();
    run(&|| nft::ensure_ruleset(&r).map(|()| true));
    let took = started.elapsed();
    assert!(run(&nft::ruleset_present));
    run(&|| nft::ensure_ruleset(&r).map(|()| true));
    let listing = t.nft(&["list", "table", "inet", "weft"]);
    assert!(
        listing.contains("ip saddr 10.32.1.0/24 ip daddr != 10.32.1.0/24"),
        "{listing}"
    );
    assert_eq!(t.nft(&["list", "tables"]).matches("weft").count(), 2);
    // A bad ruleset is refused before nft runs and leaves the applied one as it was.
    let before = t.nft(&["list", "ruleset"]);
    let bad = Ruleset::new("bad\"name");
    let err = h.run_in(|| nft::ensure_ruleset(&bad)).unwrap().unwrap_err();
    assert!(err.to_string().contains("interface name"), "{err}");
    assert_eq!(t.nft(&["list", "ruleset"]), before);
    // Flushing the table keeps the tables but loses the canary: detected.
    t.nft(&["flush", "table", "bridge", "weft"]);
    assert!(!run(&nft::ruleset_present));
    run(&|| nft::ensure_ruleset(&r).map(|()| true));
    t.nft(&["flush", "ruleset"]);
    assert!(!run(&nft::ruleset_present));
    run(&|| nft::ensure_ruleset(&r).map(|()| true));
    assert!(run(&nft::delete_ruleset));
    assert!(!run(&nft::delete_ruleset), "deleting again finds nothing");
    assert_eq!(t.nft(&["list", "tables"]), "");
    eprintln!("applied 1000 ports in {took:?}");
}
