//! Network namespaces: opened by name, PID or path; work inside one always happens on a
//! dedicated short-lived thread that calls `setns`, so the caller's thread never changes
//! namespace.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};

/// An open handle on a network namespace (a file descriptor on its nsfs inode). The
/// namespace stays alive as long as this value does.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Opens the namespace at `path` (`/run/netns/NAME`, `/proc/PID/ns/net`, a bind mount…).
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path)
            .map_err(|e| Error::io("open netns", path.display().to_string(), e))?;
        Ok(Netns { file, path })
    }

    /// Opens the namespace `ip netns` calls `name` (`/run/netns/<name>`).
    pub fn named(name: &str) -> Result<Netns> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::Invalid(format!("netns name {name:?}")));
        }
        Netns::open(Path::new("/run/netns").join(name))
    }

    /// Opens the namespace of process `pid` (`/proc/<pid>/ns/net`), as `weave attach` does.
    pub fn of_pid(pid: u32) -> Result<Netns> {
        Netns::open(format!("/proc/{pid}/ns/net"))
    }

    /// Opens the calling thread's current namespace.
    pub fn current() -> Result<Netns> {
        Netns::open("/proc/thread-self/ns/net")
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result.
    /// The calling thread is never moved. The closure may borrow from the caller.
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let target = self.path.display().to_string();
        std::thread::scope(|s| {
            let worker = std::thread::Builder::new()
                .name("weft-netns".into())
                .spawn_scoped(s, || {
                    setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET)
                        .map_err(|e| Error::io("setns", target.clone(), e.into()))?;
                    Ok(f())
                })
                .map_err(|e| Error::io("spawn netns thread", target.clone(), e))?;
            match worker.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Opens a netlink [`Handle`](crate::Handle) bound to this namespace.
    pub fn handle(&self) -> Result<crate::Handle> {
        crate::Handle::in_netns(self)
    }

    pub(crate) fn try_clone(&self) -> Result<Netns> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| Error::io("dup netns fd", self.path.display().to_string(), e))?;
        Ok(Netns {
            file,
            path: self.path.clone(),
        })
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Netns {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}
