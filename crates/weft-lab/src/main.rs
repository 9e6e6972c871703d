//! `weft-lab`: build and drive simulated hosts on this machine. See the crate docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use weft_lab::{Lab, LabError, LabSpec, Topology, DEFAULT_STATE_ROOT};

#[derive(Debug, Parser)]
#[command(
    name = "weft-lab",
    version,
    about = "Simulated hosts in network namespaces, for weft's tests and demos"
)]
struct Cli {
    /// Name prefix of the lab's namespaces
    #[arg(
        long,
        short,
        global = true,
        env = "WEFT_LAB_PREFIX",
        default_value = "weft"
    )]
    prefix: String,
    /// Where labs keep their state (per-host weft data and run directories)
    #[arg(long, global = true, env = "WEFT_LAB_STATE", default_value = DEFAULT_STATE_ROOT)]
    state_root: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a lab: N hosts on an underlay bridge
    Up {
        #[arg(long, short = 'n', default_value_t = 3)]
        hosts: usize,
        /// full, line or star
        #[arg(long, short, default_value = "full")]
        topology: Topology,
        /// MTU of the underlay links
        #[arg(long, default_value_t = 1500)]
        mtu: u32,
    },
    /// Remove everything the lab made (idempotent; works after a crash)
    Down,
    /// List the labs on this machine
    List,
    /// Show the lab's hosts
    Hosts,
    /// Run a command on a host (its namespace, host name and WEFT_* directories)
    Exec {
        host: String,
        #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Manage "containers": plain network namespaces on a host
    Container {
        #[command(subcommand)]
        action: ContainerCmd,
    },
    /// Cut the underlay link between two hosts
    Cut { a: String, b: String },
    /// Restore a cut link
    Restore { a: String, b: String },
    /// Cut a host off from all others
    Isolate { host: String },
    /// Undo isolate
    Rejoin { host: String },
    /// Drop a percentage of underlay frames (of one host's, with --host); 0 clears it
    Loss {
        percent: u8,
        #[arg(long)]
        host: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ContainerCmd {
    /// Create a container namespace on a host; prints its namespace name
    Add { host: String, name: String },
    /// Remove a container namespace
    Del { host: String, name: String },
    /// Run a command in a container
    Exec {
        host: String,
        name: String,
        #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "weft-lab must be run as root (it creates network namespaces); try: sudo weft-lab ..."
        );
        return ExitCode::from(1);
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weft-lab: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, LabError> {
    let open = || Lab::open(&cli.prefix, &cli.state_root);
    match cli.command {
        Cmd::Up {
            hosts,
            topology,
            mtu,
        } => {
            let lab = Lab::up(LabSpec {
                prefix: cli.prefix.clone(),
                hosts,
                topology,
                mtu,
                state_root: cli.state_root.clone(),
            })?;
            print_hosts(&lab);
        }
        Cmd::Down => {
            let r = Lab::down(&cli.prefix, &cli.state_root)?;
            println!(
                "removed {} namespaces and stopped {} processes of lab {}",
                r.namespaces.len(),
                r.processes,
                cli.prefix
            );
        }
        Cmd::List => {
            for p in Lab::list()? {
                println!("{p}");
            }
        }
        Cmd::Hosts => print_hosts(&open()?),
        Cmd::Exec { host, command } => {
            let lab = open()?;
            let i = lab.spec.host(&host)?;
            return exec(lab.host_command(i, &command));
        }
        Cmd::Container { action } => {
            let lab = open()?;
            match action {
                ContainerCmd::Add { host, name } => {
                    println!("{}", lab.add_container(lab.spec.host(&host)?, &name)?)
                }
                ContainerCmd::Del { host, name } => {
                    lab.remove_container(lab.spec.host(&host)?, &name)?
                }
                ContainerCmd::Exec {
                    host,
                    name,
                    command,
                } => {
                    let i = lab.spec.host(&host)?;
                    return exec(lab.container_command(i, &name, &command)?);
                }
            }
        }
        Cmd::Cut { a, b } => {
            let lab = open()?;
            lab.cut(lab.spec.host(&a)?, lab.spec.host(&b)?)?
        }
        Cmd::Restore { a, b } => {
            let lab = open()?;
            lab.restore(lab.spec.host(&a)?, lab.spec.host(&b)?)?
        }
        Cmd::Isolate { host } => {
            let lab = open()?;
            lab.isolate(lab.spec.host(&host)?)?
        }
        Cmd::Rejoin { host } => {
            let lab = open()?;
            lab.rejoin(lab.spec.host(&host)?)?
        }
        Cmd::Loss { percent, host } => {
            let lab = open()?;
            let h = host.map(|h| lab.spec.host(&h)).transpose()?;
            lab.loss(percent, h)?
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_hosts(lab: &Lab) {
    let s = &lab.spec;
    println!(
        "lab {} ({} topology, underlay MTU {})",
        s.prefix, s.topology, s.mtu
    );
    for i in 1..=s.hosts {
        println!(
            "h{i}  netns {:<12} underlay {:<12} WEFT_DATA_DIR={} WEFT_RUN_DIR={}",
            s.host_ns(i),
            s.host_addr(i),
            s.host_data_dir(i).display(),
            s.host_run_dir(i).display()
        );
    }
}

fn exec(mut cmd: std::process::Command) -> Result<ExitCode, LabError> {
    let status = cmd
        .status()
        .map_err(|e| LabError::Other(format!("cannot run ip netns exec: {e}")))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}
