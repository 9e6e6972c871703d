//! `weft expose`, `weft hide` and `weft reset` (weave-services.md §1.4, §9.4).
//!
//! expose/hide ask the router (`POST`/`DELETE /expose/{ip}/{len}`), which puts the address
//! on the bridge and keeps weft's nftables rules; both print the IPs, as Weave's, and are
//! idempotent. Addresses come from the command line; forms that need IPAM (`net:…`, none at
//! all) go through [`ipam_addresses_for_expose`], the hook IPAM will fill in.
//!
//! reset stops the router and removes everything weft made on this host: the bridge, every
//! `vethwe*` link, weft's nftables tables and its files in the data directory.

use weft_kernel::{Cidr, Handle};
use weft_router::state::StateDirs;

use crate::cli::GlobalArgs;
use crate::client::{Api, CallError};
use crate::{api_failure, http_addr, ipam_cli, launch, state_dirs, Failure, Outcome};

/// The id IPAM records the host's exposed addresses under, as Weave's.
pub const EXPOSE_ID: &str = "weave:expose";

fn fail(msg: impl Into<String>) -> Failure {
    Failure::new(1, msg)
}

/// What an address argument asks for.
#[derive(Debug, PartialEq)]
enum AddrSpec {
    /// `[ip:]a.b.c.d/n`: this address.
    Explicit(Cidr),
    /// `net:<cidr>` or `net:default`: an address IPAM allocates.
    Ipam(String),
}

fn parse_spec(arg: &str) -> Result<AddrSpec, Failure> {
    if arg.starts_with("net:") {
        return Ok(AddrSpec::Ipam(arg.to_owned()));
    }
    let text = arg.strip_prefix("ip:").unwrap_or(arg);
    let cidr: Cidr = text
        .parse()
        .map_err(|_| fail(format!("invalid address {arg:?}: expected [ip:]a.b.c.d/nn")))?;
    if !cidr.addr().is_ipv4() {
        return Err(fail(format!("{arg}: only IPv4 addresses are supported")));
    }
    Ok(AddrSpec::Explicit(cidr))
}

/// The addresses of the pseudo-container `weave:expose` for `specs` (`net:…` forms; an
/// empty list means the default subnet) from IPAM: allocated without check-alive as Weave's
/// script does (asking again gives the same ones), or, with `release`, looked up and freed
/// (for hide).
pub fn ipam_addresses_for_expose(
    api: &Api,
    specs: &[String],
    release: bool,
) -> Result<Vec<Cidr>, Failure> {
    let specs = ipam_cli::parse_specs(specs)?;
    if release {
        let mut found = Vec::new();
        for spec in &specs {
            let subnet = match spec {
                ipam_cli::AddrSpec::Net(c) => Some(c),
                _ => None,
            };
            found.extend(ipam_cli::lookup(api, EXPOSE_ID, subnet)?);
        }
        ipam_cli::release(api, EXPOSE_ID, found.iter().copied());
        return Ok(found);
    }
    Ok(ipam_cli::acquire_with(api, EXPOSE_ID, &specs, false)?
        .into_iter()
        .map(|a| a.cidr)
        .collect())
}

/// The CIDRs `args` stand for: explicit ones as given, the rest from IPAM.
fn resolve(api: &Api, args: &[String], release: bool) -> Result<Vec<Cidr>, Failure> {
    let mut explicit = Vec::new();
    let mut ipam = Vec::new();
    for a in args {
        match parse_spec(a)? {
            AddrSpec::Explicit(c) => explicit.push(c),
            AddrSpec::Ipam(s) => ipam.push(s),
        }
    }
    if args.is_empty() || !ipam.is_empty() {
        explicit.extend(ipam_addresses_for_expose(api, &ipam, release)?);
    }
    Ok(explicit)
}

fn print_ips(cidrs: &[Cidr]) {
    let ips: Vec<String> = cidrs.iter().map(|c| c.addr().to_string()).collect();
    println!("{}", ips.join(" "));
}

fn path(c: &Cidr) -> String {
    format!("/expose/{}/{}", c.addr(), c.prefix())
}

/// Exposes `cidrs` through the router (NAT unless `skip_nat`).
pub fn expose_cidrs(api: &Api, cidrs: &[Cidr], skip_nat: bool) -> Outcome {
    for c in cidrs {
        let form: &[(&str, &str)] = if skip_nat {
            &[("skipNAT", "true")]
        } else {
            &[]
        };
        match api.post_form(&path(c), form) {
            Ok(_) => {}
            Err(CallError::Status {
                code: 400 | 500,
                body,
            }) => return Err(fail(format!("weft expose {c}: {}", body.trim_end()))),
            Err(e) => return Err(api_failure(api, e)),
        }
    }
    Ok(())
}

/// Hides `cidrs` through the router.
pub fn hide_cidrs(api: &Api, cidrs: &[Cidr]) -> Outcome {
    for c in cidrs {
        match api.delete(&path(c)) {
            Ok(_) => {}
            Err(CallError::Status {
                code: 400 | 500,
                body,
            }) => return Err(fail(format!("weft hide {c}: {}", body.trim_end()))),
            Err(e) => return Err(api_failure(api, e)),
        }
    }
    Ok(())
}

pub fn expose(
    g: &GlobalArgs,
    args: &[String],
    fqdn: Option<&str>,
    without_masquerade: bool,
) -> Outcome {
    if let Some(name) = fqdn {
        return Err(fail(format!(
            "weft expose -h {name}: naming the host in weaveDNS is not implemented yet (weft has no DNS); expose without -h"
        )));
    }
    let api = Api::new(http_addr(g)?);
    let cidrs = resolve(&api, args, false)?;
    expose_cidrs(&api, &cidrs, without_masquerade)?;
    print_ips(&cidrs);
    Ok(())
}

pub fn hide(g: &GlobalArgs, args: &[String]) -> Outcome {
    let api = Api::new(http_addr(g)?);
    let cidrs = resolve(&api, args, true)?;
    hide_cidrs(&api, &cidrs)?;
    print_ips(&cidrs);
    Ok(())
}

/// IPAM's hand-over before a reset (Weave: `DELETE /peer`, §3.8): the router gives its
/// address space to a live peer. Not running, or no IPAM (404): nothing to hand over.
pub fn leave_cluster(api: &Api) -> Outcome {
    match api.delete("/peer") {
        Ok(_) | Err(CallError::NotRunning) | Err(CallError::Status { code: 404, .. }) => Ok(()),
        Err(e) => {
            let f = api_failure(api, e);
            Err(fail(format!(
                "{}; unable to remove this peer from the cluster. Re-launch weft before reset or use --force to override.",
                f.message
            )))
        }
    }
}

pub fn reset(g: &GlobalArgs, force: bool) -> Outcome {
    let dirs: StateDirs = state_dirs(g)?;
    if !force {
        let api = Api::with_timeout(http_addr(g)?, std::time::Duration::from_secs(30));
        leave_cluster(&api)?;
    }
    launch::stop_router(&dirs, false)?;
    remove_links()?;
    weft_kernel::nft::delete_ruleset()
        .map_err(|e| fail(format!("removing weft's nftables tables: {e}")))?;
    dirs.remove_data_files().map_err(|e| {
        fail(format!(
            "removing weft's files from {}: {e}",
            dirs.data.display()
        ))
    })?;
    Ok(())
}

/// Deletes the bridge and every `vethwe*` link (container veths, the TAP).
fn remove_links() -> Outcome {
    let k = |what: &str, e: weft_kernel::Error| fail(format!("{what}: {e}"));
    let mut h = Handle::new().map_err(|e| k("netlink", e))?;
    h.delete_link(crate::attach::BRIDGE)
        .map_err(|e| k("deleting the weave bridge", e))?;
    let links = h.links().map_err(|e| k("listing links", e))?;
    for l in links.iter().filter(|l| l.name.starts_with("vethwe")) {
        h.delete_link(&l.name)
            .map_err(|e| k(&format!("deleting {}", l.name), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_forms() {
        assert_eq!(
            parse_spec("ip:10.32.1.254/24").unwrap(),
            AddrSpec::Explicit("10.32.1.254/24".parse().unwrap())
        );
        assert_eq!(
            parse_spec("10.32.1.254/24").unwrap(),
            AddrSpec::Explicit("10.32.1.254/24".parse().unwrap())
        );
        assert_eq!(
            parse_spec("net:default").unwrap(),
            AddrSpec::Ipam("net:default".into())
        );
        for bad in ["10.32.1.254", "10.32.1.254/33", "fe80::1/64", "x"] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forms_that_need_ipam_need_a_router() {
        let api = Api::new("127.0.0.1:9".parse().unwrap());
        for args in [vec![], vec!["net:10.32.2.0/24".to_owned()]] {
            let e = resolve(&api, &args, false).unwrap_err();
            assert!(e.message.contains("router is not running"), "{}", e.message);
        }
        let got = resolve(&api, &["10.32.1.254/24".to_owned()], false).unwrap();
        assert_eq!(got, vec!["10.32.1.254/24".parse::<Cidr>().unwrap()]);
    }
}
