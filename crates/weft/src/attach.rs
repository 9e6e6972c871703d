//! `weft attach`, `weft detach` and `weft ps`: connect containers to the `weave` bridge, as
//! Weave's `weaveutil attach-container` does (reference weave-services.md §9.3).
//!
//! A container is named by a Docker id or name (the Docker API on `DOCKER_HOST` or
//! `/var/run/docker.sock` gives its pid), `netns:NAME` or `netns:/path` (a named network
//! namespace, as `ip netns` makes them), or `pid:PID`. Attach makes a veth pair
//! `vethwepl<id>` (on the bridge, hairpin on) ⇄ `ethwe` (created straight inside the
//! container's namespace, MTU of the bridge), adds the addresses, brings it up and adds the
//! route `224.0.0.0/4 dev ethwe` unless `--no-multicast-route`. Attaching again only adds
//! addresses. Detach removes addresses and, when none is left, the interface.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use weft_kernel::{Cidr, Handle, Netns, Route, VethPair};

use crate::cli::GlobalArgs;
use crate::client::{Api, CallError};
use crate::{ipam_cli, Failure, Outcome};

/// The bridge containers attach to.
pub const BRIDGE: &str = "weave";
/// The container-side interface name.
pub const CONTAINER_IF: &str = "ethwe";

/// A container's network namespace.
pub struct Container {
    /// The id IPAM records its addresses under: a Docker container's full id, else the
    /// spec as given (`netns:NAME`, `netns:/path`, `pid:PID`).
    pub ident: String,
    pub netns: Netns,
    /// Identifies the namespace (its inode), for the host veth name.
    pub ino: u64,
}

fn fail(msg: impl Into<String>) -> Failure {
    Failure::new(1, msg)
}

/// Find a container's network namespace.
pub fn resolve(spec: &str) -> Result<Container, Failure> {
    let mut ident = spec.to_owned();
    let netns = if let Some(name) = spec.strip_prefix("netns:") {
        let ns = if name.starts_with('/') {
            Netns::open(name)
        } else {
            Netns::named(name)
        };
        ns.map_err(|e| fail(format!("container {spec}: no such network namespace ({e})")))?
    } else if let Some(pid) = spec.strip_prefix("pid:") {
        let pid: u32 = pid
            .parse()
            .map_err(|_| fail(format!("container {spec}: pid must be a number")))?;
        Netns::of_pid(pid).map_err(|e| fail(format!("container {spec}: no such process ({e})")))?
    } else {
        let (pid, id) = docker_pid(spec)?;
        ident = id;
        Netns::of_pid(pid).map_err(|e| fail(format!("container {spec} died ({e})")))?
    };
    let ino = std::fs::metadata(netns.path())
        .map(|m| m.ino())
        .map_err(|e| fail(format!("container {spec}: {e}")))?;
    if ino
        == std::fs::metadata("/proc/self/ns/net")
            .map(|m| m.ino())
            .unwrap_or(0)
    {
        return Err(fail(format!(
            "container {spec} is running in the host network namespace, and therefore cannot be connected to weave"
        )));
    }
    Ok(Container { ident, netns, ino })
}

/// The pid of a running Docker container, from the Docker API over its unix socket.
fn docker_pid(id: &str) -> Result<(u32, String), Failure> {
    // Docker's own rule for names, which ids also satisfy: [a-zA-Z0-9][a-zA-Z0-9_.-]*. It
    // keeps the name a single path segment of the request (".." would be resolved away).
    if !id.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(fail(format!(
            "invalid container {id:?}: give a Docker id or name, netns:NAME or pid:PID"
        )));
    }
    inspect_pid(&docker_socket()?, id)
}

/// The Docker API's unix socket: `DOCKER_HOST` (unix:// only) or the default.
fn docker_socket() -> Result<String, Failure> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    match host.strip_prefix("unix://") {
        Some(path) => Ok(path.to_owned()),
        None if host.is_empty() => Ok("/var/run/docker.sock".to_owned()),
        None => Err(fail(format!(
            "DOCKER_HOST={host}: only unix:// Docker sockets are supported; or name the container netns:NAME or pid:PID"
        ))),
    }
}

/// The ids of the running Docker containers, or none when Docker cannot be reached.
fn docker_running_ids() -> Vec<String> {
    let Ok(socket) = docker_socket() else {
        return Vec::new();
    };
    let Ok(mut s) = UnixStream::connect(&socket) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if write!(s, "GET /containers/json HTTP/1.0\r\nHost: docker\r\n\r\n").is_err() {
        return Vec::new();
    }
    let mut resp = String::new();
    if s.take(16 << 20).read_to_string(&mut resp).is_err() {
        return Vec::new();
    }
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let Ok(serde_json::Value::Array(list)) = serde_json::from_str(body) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|c| c["Id"].as_str().map(str::to_owned))
        .collect()
}

/// The label `weft ps` prints for a container spec: as Weave, a Docker id or name cut to its
/// first 12 characters; weft's `netns:` and `pid:` forms whole.
fn ps_label(spec: &str) -> String {
    if spec.starts_with("netns:") || spec.starts_with("pid:") || spec == "weave:expose" {
        spec.to_owned()
    } else {
        spec.chars().take(12).collect()
    }
}

/// One process in each of these network namespaces (by the masked inode of their host veth
/// name), from /proc, for attached namespaces that have no other name.
fn pids_in_namespaces(ids: &[u64]) -> Vec<u32> {
    let mut found: Vec<(u64, u32)> = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        let id = m.ino() & HOST_IF_ID_MASK;
        if ids.contains(&id) && !found.iter().any(|(i, _)| *i == id) {
            found.push((id, pid));
        }
    }
    found.into_iter().map(|(_, pid)| pid).collect()
}

/// Ask the Docker API at `socket` for container `id` and return its pid if it runs.
fn inspect_pid(socket: &str, id: &str) -> Result<(u32, String), Failure> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        fail(format!(
            "cannot reach Docker at {socket} ({e}) to find container {id}; name it netns:NAME or pid:PID instead"
        ))
    })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    write!(
        s,
        "GET /containers/{id}/json HTTP/1.0\r\nHost: docker\r\n\r\n"
    )
    .map_err(|e| fail(format!("Docker at {socket}: {e}")))?;
    let mut resp = String::new();
    s.take(4 << 20)
        .read_to_string(&mut resp)
        .map_err(|e| fail(format!("Docker at {socket}: {e}")))?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status == "404" {
        return Err(fail(format!("Error: No such container: {id}")));
    }
    if status != "200" {
        // Docker explains its errors in {"message": ...}, e.g. an id prefix that matches
        // several containers; without this they would read as "not running".
        let message = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| head.lines().next().unwrap_or_default().to_owned());
        return Err(fail(format!(
            "Docker at {socket} could not look up container {id}: {message}"
        )));
    }
    let v: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| fail(format!("Docker's answer about {id} is not JSON: {e}")))?;
    let running = v["State"]["Running"].as_bool().unwrap_or(false);
    let pid = v["State"]["Pid"].as_u64().unwrap_or(0);
    if !running || pid == 0 {
        return Err(fail(format!("container {id} is not running")));
    }
    let full_id = v["Id"].as_str().unwrap_or(id).to_owned();
    let pid = u32::try_from(pid).map_err(|_| fail(format!("container {id}: bad pid {pid}")))?;
    Ok((pid, full_id))
}

/// Host-side veth names: this prefix and the low 28 bits of the container namespace's inode
/// in hex (15 characters, the kernel's limit).
const HOST_IF_PREFIX: &str = "vethwepl";
const HOST_IF_ID_MASK: u64 = 0xfff_ffff;

fn host_if_name(c: &Container) -> String {
    format!("{HOST_IF_PREFIX}{:07x}", c.ino & HOST_IF_ID_MASK)
}

fn kernel(what: &str, e: weft_kernel::Error) -> Failure {
    fail(format!("{what}: {e}"))
}

/// Tells the router which addresses the container behind host veth `port` has, so the
/// bridge filters its traffic (isolation, anti-spoofing; `PUT /weft/ports/{port}`), or
/// that it is gone (`DELETE`, when `cidrs` is empty). Without a running router the port
/// stays unfiltered and nothing is said; other failures are warnings (the container is
/// attached either way).
fn register_port(g: &GlobalArgs, port: &str, cidrs: &[Cidr]) {
    let Ok(addr) = crate::http_addr(g) else {
        return;
    };
    let api = Api::with_timeout(addr, Duration::from_secs(10));
    let path = format!("/weft/ports/{port}");
    let result = if cidrs.is_empty() {
        api.delete(&path)
    } else {
        let texts: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
        let form: Vec<(&str, &str)> = texts.iter().map(|t| ("cidr", t.as_str())).collect();
        api.put_form(&path, &form)
    };
    match result {
        Ok(_) | Err(CallError::NotRunning) => {}
        Err(e) => eprintln!(
            "warning: the router did not take the addresses of {port}, so its traffic is not filtered: {}",
            crate::api_failure(&api, e).message
        ),
    }
}

/// The IPv4 addresses on the container's `ethwe`.
fn ethwe_cidrs(inside: &mut Handle) -> Result<Vec<Cidr>, Failure> {
    let Some(link) = inside
        .link_by_name(CONTAINER_IF)
        .map_err(|e| kernel("looking up ethwe", e))?
    else {
        return Ok(Vec::new());
    };
    Ok(inside
        .list_addrs(Some(CONTAINER_IF))
        .map_err(|e| kernel("listing addresses", e))?
        .into_iter()
        .filter(|a| a.index == link.index && a.cidr.addr().is_ipv4())
        .map(|a| a.cidr)
        .collect())
}

pub fn attach(g: &GlobalArgs, addrs: &[String], spec: &str, multicast_route: bool) -> Outcome {
    let api = &Api::without_timeout(crate::http_addr(g)?);
    let specs = ipam_cli::parse_specs(addrs)?;
    let c = resolve(spec)?;
    let acquired = ipam_cli::acquire(api, &c.ident, &specs)?;
    let cidrs: Vec<Cidr> = acquired.iter().map(|a| a.cidr).collect();
    // Addresses IPAM allocated for this call go back if the interface cannot be set up.
    let give_back = || {
        ipam_cli::release(
            api,
            &c.ident,
            acquired.iter().filter(|a| a.allocated).map(|a| a.cidr),
        )
    };
    let result = configure_attach(g, &c, &cidrs, multicast_route);
    if result.is_err() {
        give_back();
    }
    result?;
    let ips: Vec<String> = cidrs.iter().map(|c| c.addr().to_string()).collect();
    println!("{}", ips.join(" "));
    Ok(())
}

fn configure_attach(
    g: &GlobalArgs,
    c: &Container,
    cidrs: &[Cidr],
    multicast_route: bool,
) -> Outcome {
    let mut host = Handle::new().map_err(|e| kernel("netlink", e))?;
    let bridge = host
        .link_by_name(BRIDGE)
        .map_err(|e| kernel("looking up the bridge", e))?
        .ok_or_else(|| fail("the weave bridge does not exist: run 'weft launch' first"))?;
    let mut inside = c
        .netns
        .handle()
        .map_err(|e| kernel("entering the container's namespace", e))?;
    let existing = inside
        .link_by_name(CONTAINER_IF)
        .map_err(|e| kernel("looking up ethwe", e))?;
    let host_name = host_if_name(c);
    let created = existing.is_none();
    if created {
        let mut pair = VethPair::new(&host_name, CONTAINER_IF);
        pair.peer_netns = Some(&c.netns);
        pair.mtu = Some(bridge.mtu);
        pair.master = Some(BRIDGE.to_owned());
        pair.host_up = true;
        host.ensure_veth_pair(&pair)
            .map_err(|e| kernel("creating the veth pair", e))?;
    }
    // From here on, a failure must not leave a half-made interface behind.
    let mut configure = || -> Result<(), Failure> {
        if created {
            host.set_hairpin(&host_name, true)
                .map_err(|e| kernel("hairpin", e))?;
            let _ = host.set_link_sysctl(
                weft_kernel::IpFamily::V6,
                weft_kernel::SysctlSection::Conf,
                &host_name,
                "accept_ra",
                "0",
            );
            inside
                .set_weave_sysctls(CONTAINER_IF)
                .map_err(|e| kernel("container sysctls", e))?;
        }
        for cidr in cidrs {
            inside
                .ensure_addr(CONTAINER_IF, *cidr)
                .map_err(|e| kernel(&format!("adding {cidr}"), e))?;
        }
        inside
            .set_up(CONTAINER_IF)
            .map_err(|e| kernel("bringing ethwe up", e))?;
        if multicast_route {
            inside
                .ensure_route(&Route::multicast(CONTAINER_IF))
                .map_err(|e| kernel("multicast route", e))?;
        }
        Ok(())
    };
    if let Err(e) = configure() {
        if created {
            let _ = Handle::new().and_then(|mut h| h.delete_link(&host_name));
        }
        return Err(e);
    }
    register_port(g, &host_name, &ethwe_cidrs(&mut inside)?);
    Ok(())
}

pub fn detach(g: &GlobalArgs, addrs: &[String], spec: &str) -> Outcome {
    let api = &Api::new(crate::http_addr(g)?);
    let specs = ipam_cli::parse_specs(addrs)?;
    let c = resolve(spec)?;
    let mut inside = c
        .netns
        .handle()
        .map_err(|e| kernel("entering the container's namespace", e))?;
    let Some(link) = inside
        .link_by_name(CONTAINER_IF)
        .map_err(|e| kernel("looking up ethwe", e))?
    else {
        return Err(fail(format!("container {spec} is not attached to weave")));
    };
    let present: Vec<Cidr> = inside
        .list_addrs(Some(CONTAINER_IF))
        .map_err(|e| kernel("listing addresses", e))?
        .into_iter()
        .filter(|a| a.index == link.index && a.cidr.addr().is_ipv4())
        .map(|a| a.cidr)
        .collect();
    // `net:` forms name what IPAM holds for the container (never allocating); plain
    // addresses are taken as given. With no arguments (`net:default`) and nothing known to
    // IPAM (no router, IPAM off, addresses given by hand), detach completely.
    let mut remove: Vec<Cidr> = Vec::new();
    for spec in &specs {
        match spec {
            ipam_cli::AddrSpec::Ip(cidr) => remove.push(*cidr),
            ipam_cli::AddrSpec::Default => {
                let known = ipam_cli::lookup(api, &c.ident, None)?;
                if known.is_empty() && addrs.is_empty() {
                    remove.extend(present.iter().copied());
                } else {
                    remove.extend(known);
                }
            }
            ipam_cli::AddrSpec::Net(subnet) => {
                remove.extend(ipam_cli::lookup(api, &c.ident, Some(subnet))?)
            }
        }
    }
    remove.retain(|r| present.contains(r));
    remove.dedup();
    for cidr in &remove {
        inside
            .remove_addr(CONTAINER_IF, *cidr)
            .map_err(|e| kernel(&format!("removing {cidr}"), e))?;
    }
    let left: Vec<Cidr> = present
        .iter()
        .filter(|p| !remove.contains(p))
        .copied()
        .collect();
    if left.is_empty() {
        inside
            .delete_link(CONTAINER_IF)
            .map_err(|e| kernel("deleting ethwe", e))?;
    }
    // The addresses go back to IPAM (Weave releases only `net:` ones; a claim of an
    // address that is no longer on the container would only leak).
    ipam_cli::release(api, &c.ident, remove.iter().copied());
    register_port(g, &host_if_name(&c), &left);
    let ips: Vec<String> = remove.iter().map(|c| c.addr().to_string()).collect();
    println!("{}", ips.join(" "));
    Ok(())
}

/// `weft ps`: `<container> <mac> <cidr> ...` per weave interface; `weave:expose` is the bridge.
pub fn ps(specs: &[String]) -> Outcome {
    let mut host = Handle::new().map_err(|e| kernel("netlink", e))?;
    let Some(bridge) = host
        .link_by_name(BRIDGE)
        .map_err(|e| kernel("looking up the bridge", e))?
    else {
        // As Weave: no bridge, nothing to show.
        return Ok(());
    };
    // Interface indexes are per namespace and repeat across them, so a container is matched
    // by name: attach names its host end after the container namespace's inode.
    let ports: Vec<String> = host
        .links()
        .map_err(|e| kernel("listing links", e))?
        .into_iter()
        .filter(|l| l.master == Some(bridge.index))
        .map(|l| l.name)
        .collect();
    // With no arguments, as Weave: the bridge and every running Docker container; then
    // weft's named namespaces, and any other attached namespace by one of its processes.
    let listing_all = specs.is_empty();
    let specs: Vec<String> = if listing_all {
        let mut all = vec!["weave:expose".to_owned()];
        all.extend(docker_running_ids());
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| format!("netns:{}", e.file_name().to_string_lossy()))
                .collect();
            names.sort();
            all.extend(names);
        }
        all
    } else {
        specs.to_vec()
    };
    let mut shown: Vec<u64> = Vec::new();
    for spec in &specs {
        show_one(&mut host, &bridge, &ports, spec, listing_all, &mut shown)?;
    }
    if listing_all {
        // Attached namespaces nothing above named (e.g. attached as pid:PID): by a process.
        let unnamed: Vec<u64> = ports
            .iter()
            .filter_map(|p| u64::from_str_radix(p.strip_prefix(HOST_IF_PREFIX)?, 16).ok())
            .filter(|ino| !shown.contains(ino))
            .collect();
        if !unnamed.is_empty() {
            for pid in pids_in_namespaces(&unnamed) {
                show_one(
                    &mut host,
                    &bridge,
                    &ports,
                    &format!("pid:{pid}"),
                    true,
                    &mut shown,
                )?;
            }
        }
    }
    Ok(())
}

/// Print `spec`'s line if it is attached (and, when listing all, not shown yet). `shown`
/// collects the namespaces printed, by the id their host veth is named after.
fn show_one(
    host: &mut Handle,
    bridge: &weft_kernel::Link,
    ports: &[String],
    spec: &str,
    listing_all: bool,
    shown: &mut Vec<u64>,
) -> Result<(), Failure> {
    if spec == "weave:expose" {
        let addrs = ipv4_cidrs(host, bridge.index)?;
        print_line(spec, bridge.mac.map(|m| m.to_string()), &addrs);
        return Ok(());
    }
    let Ok(c) = resolve(spec) else {
        return Ok(()); // as Weave: containers that are gone are skipped
    };
    let id = c.ino & HOST_IF_ID_MASK;
    if !ports.contains(&host_if_name(&c)) || (listing_all && shown.contains(&id)) {
        return Ok(());
    }
    shown.push(id);
    let Ok(mut inside) = c.netns.handle() else {
        return Ok(());
    };
    if let Ok(Some(l)) = inside.link_by_name(CONTAINER_IF) {
        let addrs = ipv4_cidrs(&mut inside, l.index)?;
        print_line(&ps_label(spec), l.mac.map(|m| m.to_string()), &addrs);
    }
    Ok(())
}

fn ipv4_cidrs(h: &mut Handle, index: u32) -> Result<Vec<String>, Failure> {
    Ok(h.list_addrs(None)
        .map_err(|e| kernel("listing addresses", e))?
        .into_iter()
        .filter(|a| a.index == index && matches!(a.cidr.addr(), IpAddr::V4(_)))
        .map(|a| a.cidr.to_string())
        .collect())
}

fn print_line(label: &str, mac: Option<String>, addrs: &[String]) {
    let mut line = format!("{label} {}", mac.unwrap_or_default());
    for a in addrs {
        line.push(' ');
        line.push_str(a);
    }
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;

    /// Serve one request on a fresh socket with `response`; return what `inspect_pid` made of
    /// it and the request line the fake Docker received.
    fn against_fake_docker(
        id: &str,
        response: &'static str,
    ) -> (Result<(u32, String), String>, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(conn);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            reader.get_mut().write_all(response.as_bytes()).unwrap();
            request_line
        });
        let got = inspect_pid(path.to_str().unwrap(), id).map_err(|f| f.message);
        (got, server.join().unwrap())
    }

    #[test]
    fn running_container_gives_its_pid() {
        let (got, request) = against_fake_docker(
            "web",
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"Id\":\"4f1e0c\",\"State\":{\"Running\":true,\"Pid\":4242}}",
        );
        assert_eq!(
            got,
            Ok((4242, "4f1e0c".to_owned())),
            "the pid and the full id"
        );
        assert_eq!(request, "GET /containers/web/json HTTP/1.0\r\n");
    }

    #[test]
    fn docker_errors_are_reported_as_docker_gives_them() {
        let (got, _) = against_fake_docker(
            "nope",
            "HTTP/1.0 404 Not Found\r\n\r\n{\"message\":\"No such container: nope\"}\n",
        );
        assert_eq!(got, Err("Error: No such container: nope".to_owned()));
        let (got, _) = against_fake_docker(
            "e",
            "HTTP/1.0 500 Internal Server Error\r\n\r\n{\"message\":\"Multiple IDs found with provided prefix: e\"}\n",
        );
        let msg = got.unwrap_err();
        assert!(
            msg.ends_with(
                "could not look up container e: Multiple IDs found with provided prefix: e"
            ),
            "{msg}"
        );
        let (got, _) = against_fake_docker(
            "x",
            "HTTP/1.0 301 Moved Permanently\r\nLocation: /json\r\n\r\n",
        );
        let msg = got.unwrap_err();
        assert!(
            msg.ends_with("container x: HTTP/1.0 301 Moved Permanently"),
            "{msg}"
        );
        let (got, _) = against_fake_docker(
            "idle",
            "HTTP/1.0 200 OK\r\n\r\n{\"State\":{\"Running\":false,\"Pid\":0}}",
        );
        assert_eq!(got, Err("container idle is not running".to_owned()));
    }

    #[test]
    fn names_that_are_not_one_docker_name_are_refused_before_asking() {
        for bad in ["", ".", "..", "-x", "a/b", "a b"] {
            let msg = docker_pid(bad).unwrap_err().message;
            assert!(msg.starts_with("invalid container"), "{bad:?}: {msg}");
        }
    }
}
