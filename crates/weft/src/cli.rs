//! The command line, as clap sees it. Commands and flags follow Weave Net's `weave` script.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "weft",
    version,
    about = "weft: a container network that speaks Weave Net's protocol",
    long_about = None,
    after_help = "Per-host state: --data-dir (WEFT_DATA_DIR, default /var/lib/weft) keeps what survives restarts;\n--run-dir (WEFT_RUN_DIR, default /run/weft) holds the pid file and the router's log (weft.log)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory for state that survives router restarts
    #[arg(
        long,
        global = true,
        env = "WEFT_DATA_DIR",
        default_value = "/var/lib/weft"
    )]
    pub data_dir: PathBuf,
    /// Directory for the pid file, the router's log and sockets
    #[arg(long, global = true, env = "WEFT_RUN_DIR", default_value = "/run/weft")]
    pub run_dir: PathBuf,
    /// Address of the router's HTTP API [env: WEFT_HTTP_ADDR or WEAVE_HTTP_ADDR] [default: 127.0.0.1:6784]
    #[arg(long, global = true, value_name = "ADDR")]
    pub http_addr: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the router for this host in the background and print its peer name
    Launch(LaunchArgs),
    /// Run the router in the foreground (for systemd and Kubernetes); logs go to stderr
    Router(RouterArgs),
    /// Stop the router for this host (attached containers and the bridge stay as they are)
    Stop,
    /// Show the router's status
    Status {
        /// A sub-view: targets, connections, peers, dns or ipam (as the router offers them)
        view: Option<String>,
    },
    /// Print the version of this program and of the running router
    Version,
    /// Add connection targets (or replace them all with --replace)
    Connect {
        #[arg(long)]
        replace: bool,
        /// <ip_address_or_fqdn>[:<port>]
        #[arg(required_unless_present = "replace")]
        peers: Vec<String>,
    },
    /// Remove connection targets
    Forget {
        #[arg(required = true)]
        peers: Vec<String>,
    },
    /// Connect a container to the weave network: attach [addr ...] <container>
    ///
    /// <addr> is [ip:]a.b.c.d/nn; <container> is a Docker id or name, netns:NAME, netns:/path or
    /// pid:PID. Prints the addresses.
    Attach {
        /// Do not add the route 224.0.0.0/4 dev ethwe
        #[arg(long)]
        no_multicast_route: bool,
        /// Do not register the container in weaveDNS (weft has no weaveDNS yet, so this changes nothing)
        #[arg(long)]
        without_dns: bool,
        /// Addresses, then the container
        #[arg(required = true, value_name = "ADDR... CONTAINER")]
        args: Vec<String>,
    },
    /// Remove addresses from a container (all of them, and its ethwe, when none are given)
    Detach {
        /// Addresses, then the container
        #[arg(required = true, value_name = "ADDR... CONTAINER")]
        args: Vec<String>,
    },
    /// Give this host an address on the weave network: expose [addr ...] [-h fqdn] [--without-masquerade]
    ///
    /// <addr> is [ip:]a.b.c.d/nn. The host reaches containers in that subnet, and their traffic
    /// leaving the host is masqueraded (unless --without-masquerade). Prints the addresses.
    #[command(disable_help_flag = true)]
    Expose {
        /// Name the host in weaveDNS (weft has no DNS yet: refused)
        #[arg(short = 'h', value_name = "FQDN")]
        fqdn: Option<String>,
        /// Do not masquerade traffic between the exposed subnet and elsewhere
        #[arg(long)]
        without_masquerade: bool,
        /// Print help
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        addrs: Vec<String>,
    },
    /// Take addresses given by expose off the host: hide [addr ...]; prints them
    Hide { addrs: Vec<String> },
    /// Stop the router and remove everything weft made on this host: the bridge, container
    /// interfaces (vethwe*), weft's nftables tables and its state files
    Reset {
        /// Do not first hand this peer's address space to another peer (for a router that
        /// cannot be reached)
        #[arg(long)]
        force: bool,
    },
    /// List containers attached to weave: <container> <mac> <cidr>...
    Ps { containers: Vec<String> },
    /// Take over the address space of peers that are gone for good: rmpeer <peer>...
    ///
    /// <peer> is a peer name or nickname. Run it on one host only.
    Rmpeer {
        #[arg(required = true)]
        peers: Vec<String>,
    },
    /// Wait until IPAM has its ring (runs the consensus if it has not happened yet)
    Prime,
    /// Print the router's full report as JSON, or through a Go template with -f
    Report {
        /// A Go text/template over the report, e.g. '{{.Router.Name}}'
        #[arg(short = 'f', long = "format")]
        format: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct RouterArgs {
    /// Peer name, like a MAC address (default: persisted, else derived from /etc/machine-id)
    #[arg(long)]
    pub name: Option<String>,
    /// Nickname shown next to the peer name (default: the host name)
    #[arg(long)]
    pub nickname: Option<String>,
    /// debug, info, warning or error
    #[arg(long, default_value = "info", value_parser = ["debug", "info", "warning", "error"])]
    pub log_level: String,
    /// Mesh port: TCP for the control plane, UDP for the sleeve
    #[arg(long, default_value_t = 6783)]
    pub port: u16,
    /// Address the mesh listens on (default: all)
    #[arg(long)]
    pub host: Option<std::net::IpAddr>,
    /// Encrypt the mesh with this password (better: set WEAVE_PASSWORD, which keeps it out of ps)
    #[arg(long, env = "WEAVE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Comma-separated CIDRs whose peers need no data-path encryption
    #[arg(long, default_value = "")]
    pub trusted_subnets: String,
    /// Most connections to keep (0: unlimited)
    #[arg(long, default_value_t = 200)]
    pub conn_limit: usize,
    /// Do not connect to peers learned from other peers
    #[arg(long)]
    pub no_discovery: bool,
    /// Connect to the targets saved by the last run instead of [PEERS]
    #[arg(long)]
    pub resume: bool,
    /// Speak only Weave Net 2.8.1's protocol on the wire, also to weft peers: no segmented
    /// sleeve datagrams, Weave's 10 s heartbeats (weft peers otherwise use both)
    #[arg(long)]
    pub no_weft_extensions: bool,
    /// The range IPAM allocates from; empty disables IPAM
    #[arg(
        long,
        alias = "iprange",
        default_value = "10.32.0.0/12",
        value_name = "CIDR"
    )]
    pub ipalloc_range: String,
    /// The subnet containers get when they ask for none (default: the whole range)
    #[arg(long, value_name = "CIDR")]
    pub ipalloc_default_subnet: Option<String>,
    /// How the first ring is made: consensus[=<count>], seed=<peer>,<peer>... or observer
    #[arg(long, default_value = "consensus", value_name = "MODE")]
    pub ipalloc_init: String,
    /// weft only: take over the space of a peer unreachable this long (e.g. 30m, 1h; off by
    /// default, as in Weave, where only 'rmpeer' does)
    #[arg(long, value_name = "DURATION")]
    pub ipalloc_reclaim_after: Option<String>,
    /// Peers to connect to: <ip_address_or_fqdn>[:<port>]
    pub peers: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LaunchArgs {
    #[command(flatten)]
    pub router: RouterArgs,
}
