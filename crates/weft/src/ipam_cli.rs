//! The IPAM side of `weft attach`/`detach` (and, later, expose): address arguments as the
//! `weave` script reads them, and the router calls that turn them into addresses
//! (reference weave-services.md §1.4 `attach`, `detach`).
//!
//! * no address, or `net:default`: `POST /ip/<id>?check-alive=true` (lowest free address
//!   in the default subnet);
//! * `net:<cidr>`: `POST /ip/<id>/<cidr>?check-alive=true`;
//! * `ip:<cidr>` or a plain `<cidr>`: `PUT /ip/<id>/<ip>/<len>?check-alive=true&
//!   noErrorOnUnknown=true`, a claim that does not wait for the ring, when a router runs (a router without IPAM answers 404, which is fine: the address is
//!   used as given).
//!
//! The id is the container's: a Docker container's full id, or `netns:NAME` / `pid:PID`.

use std::net::Ipv4Addr;

use weft_kernel::Cidr;

use crate::client::{Api, CallError};
use crate::Failure;

/// One address argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrSpec {
    /// `net:default` (or no argument at all).
    Default,
    /// `net:<cidr>`: allocate in this subnet.
    Net(Cidr),
    /// `ip:<cidr>` or `<cidr>`: this address.
    Ip(Cidr),
}

/// An address a container got, and whether IPAM allocated it for a `net:` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub cidr: Cidr,
    pub allocated: bool,
}

fn fail(msg: impl Into<String>) -> Failure {
    Failure::new(1, msg)
}

fn parse_cidr(arg: &str, text: &str) -> Result<Cidr, Failure> {
    let cidr: Cidr = text
        .parse()
        .map_err(|_| fail(format!("invalid address {arg:?}: expected a.b.c.d/nn")))?;
    if !cidr.addr().is_ipv4() {
        return Err(fail(format!("{arg}: only IPv4 addresses are supported")));
    }
    Ok(cidr)
}

/// Parse the address arguments; none means `net:default`.
pub fn parse_specs(args: &[String]) -> Result<Vec<AddrSpec>, Failure> {
    if args.is_empty() {
        return Ok(vec![AddrSpec::Default]);
    }
    args.iter()
        .map(|a| {
            if a == "net:default" {
                return Ok(AddrSpec::Default);
            }
            if let Some(net) = a.strip_prefix("net:") {
                let cidr = parse_cidr(a, net)?;
                let bits = u32::from(ipv4(&cidr));
                let host_mask = u32::MAX.checked_shr(u32::from(cidr.prefix())).unwrap_or(0);
                if bits & host_mask != 0 {
                    return Err(fail(format!(
                        "{a}: invalid subnet - bits after network prefix are not all zero"
                    )));
                }
                if cidr.prefix() > 30 {
                    return Err(fail(format!(
                        "{a}: a subnet to allocate from needs at least 4 addresses (/30 or larger)"
                    )));
                }
                return Ok(AddrSpec::Net(cidr));
            }
            let text = a.strip_prefix("ip:").unwrap_or(a);
            Ok(AddrSpec::Ip(parse_cidr(a, text)?))
        })
        .collect()
}

fn ipv4(c: &Cidr) -> Ipv4Addr {
    match c.addr() {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// The id as one path segment (a `netns:/path` id has slashes).
pub fn path_segment(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn router_error(what: &str, e: CallError) -> Failure {
    match e {
        CallError::NotRunning => fail(format!(
            "{what}: the weft router is not running; start it with 'weft launch' (or give explicit addresses)"
        )),
        CallError::Status { body, .. } => fail(format!("{what}: {}", body.trim_end())),
        CallError::Transport(t) => fail(format!("{what}: {t}")),
    }
}

/// Turn the specs into addresses with the router's IPAM. If one fails, what was allocated
/// for this call is released again, so nothing is left half-done.
pub fn acquire(api: &Api, id: &str, specs: &[AddrSpec]) -> Result<Vec<Acquired>, Failure> {
    acquire_with(api, id, specs, true)
}

/// [`acquire`], saying whether the id is a container IPAM may check and release by itself
/// (`check-alive`); `weave:expose` is not.
pub fn acquire_with(
    api: &Api,
    id: &str,
    specs: &[AddrSpec],
    check_alive: bool,
) -> Result<Vec<Acquired>, Failure> {
    let mut got: Vec<Acquired> = Vec::new();
    for spec in specs {
        match one(api, id, spec, check_alive) {
            Ok(Some(a)) => got.push(a),
            Ok(None) => {}
            Err(e) => {
                release(api, id, got.iter().filter(|a| a.allocated).map(|a| a.cidr));
                return Err(e);
            }
        }
    }
    Ok(got)
}

fn one(
    api: &Api,
    id: &str,
    spec: &AddrSpec,
    check_alive: bool,
) -> Result<Option<Acquired>, Failure> {
    let seg = path_segment(id);
    let alive = if check_alive { "true" } else { "false" };
    let (path, what) = match spec {
        AddrSpec::Ip(cidr) => {
            let path = format!("/ip/{seg}/{}/{}", cidr.addr(), cidr.prefix());
            // noErrorOnUnknown: an explicit address is the user's choice, so attach does not
            // wait for the ring; the router keeps the claim and makes it once it can.
            let query = [("check-alive", alive), ("noErrorOnUnknown", "true")];
            return match api.call("PUT", &path, &query) {
                Ok(_) => Ok(Some(Acquired {
                    cidr: *cidr,
                    allocated: false,
                })),
                // No router, or a router without IPAM: the address is used as given.
                Err(CallError::NotRunning) | Err(CallError::Status { code: 404, .. }) => {
                    Ok(Some(Acquired {
                        cidr: *cidr,
                        allocated: false,
                    }))
                }
                Err(e) => Err(router_error(&format!("claiming {cidr}"), e)),
            };
        }
        AddrSpec::Default => (format!("/ip/{seg}"), "net:default".to_owned()),
        AddrSpec::Net(c) => (
            format!("/ip/{seg}/{}/{}", c.addr(), c.prefix()),
            format!("net:{c}"),
        ),
    };
    match api.call("POST", &path, &[("check-alive", alive)]) {
        Ok(body) => {
            let body = body.trim();
            if body == "cancelled" {
                return Err(fail(format!(
                    "allocating {what} for {id}: cancelled (the container is gone)"
                )));
            }
            let cidr: Cidr = body.parse().map_err(|_| {
                fail(format!(
                    "allocating {what}: the router answered {body:?}, not an address"
                ))
            })?;
            Ok(Some(Acquired {
                cidr,
                allocated: true,
            }))
        }
        Err(CallError::Status { code: 404, .. }) => Err(fail(
            "IP address allocation must be enabled to use 'net:' (launch without --ipalloc-range \"\")",
        )),
        Err(e) => Err(router_error(&format!("allocating {what}"), e)),
    }
}

/// The addresses IPAM holds for `id` (in the default subnet, or in `subnet`), for
/// `detach net:...`. None when no router or no IPAM answers.
pub fn lookup(api: &Api, id: &str, subnet: Option<&Cidr>) -> Result<Vec<Cidr>, Failure> {
    let seg = path_segment(id);
    let path = match subnet {
        Some(c) => format!("/ip/{seg}/{}/{}", c.addr(), c.prefix()),
        None => format!("/ip/{seg}"),
    };
    match api.call("GET", &path, &[]) {
        Ok(body) => body
            .split_whitespace()
            .map(|t| {
                t.parse::<Cidr>()
                    .map_err(|_| fail(format!("the router listed {t:?}, not an address")))
            })
            .collect(),
        Err(CallError::NotRunning) | Err(CallError::Status { code: 404, .. }) => Ok(Vec::new()),
        Err(e) => Err(router_error("looking up addresses", e)),
    }
}

/// Release addresses of `id` in IPAM; errors (not recorded, no router) are ignored: detach
/// must finish.
pub fn release(api: &Api, id: &str, cidrs: impl IntoIterator<Item = Cidr>) {
    let seg = path_segment(id);
    for c in cidrs {
        let _ = api.call("DELETE", &format!("/ip/{seg}/{}", c.addr()), &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(args: &[&str]) -> Result<Vec<AddrSpec>, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_specs(&args).map_err(|f| f.message)
    }

    #[test]
    fn address_forms() {
        assert_eq!(specs(&[]).unwrap(), vec![AddrSpec::Default]);
        assert_eq!(specs(&["net:default"]).unwrap(), vec![AddrSpec::Default]);
        assert_eq!(
            specs(&["net:10.32.1.0/24", "ip:10.32.2.5/24", "10.2.1.1/24"]).unwrap(),
            vec![
                AddrSpec::Net("10.32.1.0/24".parse().unwrap()),
                AddrSpec::Ip("10.32.2.5/24".parse().unwrap()),
                AddrSpec::Ip("10.2.1.1/24".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn bad_forms_say_why() {
        assert!(specs(&["net:10.32.1.1/24"])
            .unwrap_err()
            .contains("not all zero"));
        assert!(specs(&["net:10.32.1.0/31"])
            .unwrap_err()
            .contains("at least 4"));
        assert!(specs(&["net:nonsense"])
            .unwrap_err()
            .contains("invalid address"));
        assert!(specs(&["ip:10.1.1.1"]).unwrap_err().contains("a.b.c.d/nn"));
        assert!(specs(&["fe80::1/64"]).unwrap_err().contains("IPv4"));
    }

    #[test]
    fn ids_with_slashes_are_one_segment() {
        assert_eq!(path_segment("netns:/run/x"), "netns%3A%2Frun%2Fx");
        assert_eq!(path_segment("netns:c1"), "netns%3Ac1");
    }
}
