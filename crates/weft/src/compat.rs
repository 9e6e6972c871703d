//! What a Weave Net user may type that weft does not do yet: each gets a clear refusal instead
//! of clap's generic "unexpected argument". Entries leave these lists as the features land.

/// `weave` commands that weft has not implemented yet.
pub const COMMANDS_NOT_YET: &[&str] = &[
    "setup",
    "env",
    "config",
    "dns-args",
    "dns-add",
    "dns-remove",
    "dns-lookup",
];

/// Commands Weave Net itself removed in 2.0.
pub const COMMANDS_REMOVED: &[&str] = &[
    "run",
    "start",
    "restart",
    "launch-plugin",
    "stop-plugin",
    "launch-proxy",
    "stop-proxy",
    "launch-router",
    "stop-router",
];

/// `weave launch` / weaver flags that weft does not implement yet.
pub const LAUNCH_FLAGS_NOT_YET: &[&str] = &[
    "--no-restart",
    "--no-dns",
    "--dns-listen-address",
    "--plugin",
    "--proxy",
    "-H",
    "--without-dns",
    "--no-multicast-route",
    "--no-rewrite-hosts",
    "--no-default-ipalloc",
    "--hostname-from-label",
    "--hostname-match",
    "--hostname-replacement",
    "--rewrite-inspect",
    "--token",
    "--dns-domain",
    "--dns-ttl",
    "--dns-fallback-timeout",
    "--no-fastdp",
    "--no-bridged-fastdp",
    "--mtu",
    "--expect-npc",
    "--no-masq-local",
    "--awsvpc",
    "--metrics-addr",
    "--status-addr",
    "--pkt-debug",
    "--min-protocol-version",
    "--docker-api",
    "--docker-bridge",
    "--weave-bridge",
    "--datapath",
    "--db-prefix",
    "--proc-path",
    "--host-root",
    "--peer-discovery-url",
    "--advertise-address",
    "--plugin-v2",
    "--plugin-v2-multicast",
    "--plugin-socket",
    "--plugin-mesh-socket",
    "--resolv-conf",
    "--tls",
    "--tlsverify",
    "--tlscacert",
    "--tlscert",
    "--tlskey",
    "--no-detect-tls",
];

/// A refusal for `args` (the whole command line without the program name), if one applies.
pub fn refusal(args: &[String]) -> Option<String> {
    let command_at = command_position(args)?;
    let command = args[command_at].as_str();
    if COMMANDS_REMOVED.contains(&command) {
        return Some(format!(
            "The 'weave {command}' command has been removed as of Weave Net version 2.0, and weft does not have it either"
        ));
    }
    if COMMANDS_NOT_YET.contains(&command) {
        return Some(format!(
            "'weft {command}' (a Weave Net command) is not implemented in weft yet"
        ));
    }
    if command == "launch" || command == "router" {
        for arg in &args[command_at + 1..] {
            let flag = arg.split_once('=').map_or(arg.as_str(), |(f, _)| f);
            // Weave's flag parser also takes single-dash long flags (-password).
            let long = if flag.starts_with("--") || flag == "-H" {
                flag.to_owned()
            } else if let Some(rest) = flag.strip_prefix('-') {
                format!("--{rest}")
            } else {
                continue;
            };
            if LAUNCH_FLAGS_NOT_YET.contains(&long.as_str()) {
                return Some(format!(
                    "weft {command}: {flag} is a Weave Net option that weft does not implement yet; remove it"
                ));
            }
        }
    }
    None
}

/// Global options that take a value in the next argument.
const GLOBAL_VALUE_FLAGS: &[&str] = &["--data-dir", "--run-dir", "--http-addr"];

fn command_position(args: &[String]) -> Option<usize> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if GLOBAL_VALUE_FLAGS.contains(&a) {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(line: &str) -> Option<String> {
        refusal(
            &line
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn refusals() {
        assert!(r("dns-add c1").unwrap().contains("not implemented"));
        assert_eq!(r("rmpeer h1"), None);
        assert_eq!(r("prime"), None);
        assert_eq!(r("expose 10.2.1.1/24"), None);
        assert_eq!(r("hide 10.2.1.1/24"), None);
        assert_eq!(r("reset --force"), None);
        assert_eq!(r("attach 10.2.1.1/24 c1"), None);
        assert!(r("launch-router").unwrap().contains("removed"));
        assert!(r("launch --no-dns").unwrap().contains("--no-dns"));
        assert!(r("launch -dns-domain x").unwrap().contains("-dns-domain"));
        assert_eq!(r("launch --ipalloc-range 10.2.0.0/16"), None);
        assert_eq!(r("launch --password=x"), None);
        assert!(r("--data-dir /x launch --no-fastdp")
            .unwrap()
            .contains("--no-fastdp"));
        assert_eq!(r("launch --name ::1"), None);
        assert_eq!(r("status"), None);
        assert_eq!(
            r("status --password"),
            None,
            "only launch/router flags are screened"
        );
    }
}
