//! Typed errors: every failure says which operation, on which object, and (for kernel
//! refusals) which errno.

use std::io;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while changing kernel network state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel answered a request with a negative errno (`NLMSG_ERROR`).
    #[error("{op} {target}: kernel refused: {source} (errno {errno})")]
    Kernel {
        /// The operation, e.g. `"create bridge"`.
        op: &'static str,
        /// What it was applied to, e.g. a link name or a CIDR.
        target: String,
        /// The positive errno.
        errno: i32,
        /// The same errno as an `io::Error`.
        source: io::Error,
    },
    /// A system call (socket, send, recv, open, ioctl, setns, write) failed.
    #[error("{op} {target}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// What it was applied to.
        target: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The kernel's reply could not be decoded or broke the request/reply protocol
    /// (wrong sequence number, unexpected message type, truncation).
    #[error("{op} {target}: bad netlink reply: {detail}")]
    Protocol {
        /// The operation.
        op: &'static str,
        /// What it was applied to.
        target: String,
        /// What was wrong.
        detail: String,
    },
    /// A name is held by an object of another kind than the one asked for; weft refuses to
    /// touch it (Weave: "do 'weave reset'").
    #[error("{name}: exists as {found}, wanted {wanted}")]
    Conflict {
        /// The contested name.
        name: String,
        /// The kind that was asked for.
        wanted: String,
        /// The kind actually found.
        found: String,
    },
    /// An object that the operation needs does not exist.
    #[error("{what} {name} not found")]
    NotFound {
        /// Its kind, e.g. `"link"`.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// `nft` (weft's nftables tables) failed; `detail` says what and what to do.
    #[error("nftables: {op}: {detail}")]
    Nft {
        /// The operation, e.g. `"apply weft's nftables rules"`.
        op: &'static str,
        /// nft's message, the failed rule and the remedy.
        detail: String,
    },
    /// A caller-supplied value is invalid (bad name, MAC, CIDR, MTU…).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl Error {
    /// The errno behind this error, if the kernel or a system call reported one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, target: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op,
            target: target.into(),
            source,
        }
    }

    pub(crate) fn protocol(
        op: &'static str,
        target: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Error::Protocol {
            op,
            target: target.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn kernel(op: &'static str, target: impl Into<String>, errno: i32) -> Self {
        Error::Kernel {
            op,
            target: target.into(),
            errno,
            source: io::Error::from_raw_os_error(errno),
        }
    }
}
