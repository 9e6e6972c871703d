//! Per-host state directories and the pid file that says whether a router runs for them.
//!
//! `data` holds what must survive restarts (the peer name, later IPAM and targets); `run` holds
//! the pid file, the daemon's log and sockets. The pid file carries an exclusive `flock` for as
//! long as its router lives, so a file left behind by a killed router is recognised as stale
//! (nobody holds its lock) and is replaced instead of blocking every later launch.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Where one host's router keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDirs {
    pub data: PathBuf,
    pub run: PathBuf,
}

/// What went wrong with the state directories or the pid file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use {what} directory {path}: {source}; pass a writable directory with {hint}")]
    Unwritable {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
        source: io::Error,
    },
    #[error(
        "weft is already running (pid {pid}) for run directory {run_dir}; stop it with 'weft stop'"
    )]
    AlreadyRunning { pid: u32, run_dir: PathBuf },
    #[error("cannot use pid file {path}: {source}")]
    PidFile { path: PathBuf, source: io::Error },
}

/// Whether a router holds the pid file of a run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// No pid file.
    NotRunning,
    /// A pid file that no live router holds (its router was killed).
    Stale,
    /// A live router holds the pid file.
    Running { pid: u32 },
}

impl StateDirs {
    pub fn pid_file(&self) -> PathBuf {
        self.run.join("weft.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.run.join("weft.log")
    }

    /// Create both directories if needed and check that they are writable.
    pub fn prepare(&self) -> Result<(), StateError> {
        ensure_writable_dir(&self.data, "data", "--data-dir or WEFT_DATA_DIR")?;
        ensure_writable_dir(&self.run, "run", "--run-dir or WEFT_RUN_DIR")
    }

    /// Whether a router runs for this run directory. Never creates anything.
    pub fn liveness(&self) -> Result<Liveness, StateError> {
        let path = self.pid_file();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Liveness::NotRunning),
            Err(source) => return Err(StateError::PidFile { path, source }),
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            // We got the lock, so nobody holds it: dropping our lock releases it again.
            Ok(_lock) => Ok(Liveness::Stale),
            Err((mut file, Errno::EWOULDBLOCK)) => Ok(match read_pid(&mut file) {
                Some(pid) => Liveness::Running { pid },
                // The owner holds the lock but has not written its pid yet.
                None => Liveness::Running { pid: 0 },
            }),
            Err((_, errno)) => Err(StateError::PidFile {
                path,
                source: io::Error::from(errno),
            }),
        }
    }
}

fn ensure_writable_dir(
    path: &Path,
    what: &'static str,
    hint: &'static str,
) -> Result<(), StateError> {
    let err = |source| StateError::Unwritable {
        what,
        path: path.to_owned(),
        hint,
        source,
    };
    fs::create_dir_all(path).map_err(err)?;
    let probe = path.join(format!(".weft-write-test-{}", std::process::id()));
    File::create(&probe).map_err(err)?;
    fs::remove_file(&probe).map_err(err)?;
    Ok(())
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// The pid file, locked by the running router. Dropping it removes the file.
#[derive(Debug)]
pub struct PidLock {
    path: PathBuf,
    _lock: Flock<File>,
}

impl PidLock {
    /// Take the pid file of `dirs` for this process, replacing a stale one.
    pub fn acquire(dirs: &StateDirs) -> Result<Self, StateError> {
        let path = dirs.pid_file();
        let pid_err = |source| StateError::PidFile {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(pid_err)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                return Err(StateError::AlreadyRunning {
                    pid: read_pid(&mut file).unwrap_or(0),
                    run_dir: dirs.run.clone(),
                })
            }
            Err((_, errno)) => return Err(pid_err(io::Error::from(errno))),
        };
        lock.set_len(0).map_err(pid_err)?;
        lock.seek(SeekFrom::Start(0)).map_err(pid_err)?;
        writeln!(lock, "{}", std::process::id()).map_err(pid_err)?;
        lock.sync_all().map_err(pid_err)?;
        Ok(PidLock { path, _lock: lock })
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        // Remove while still holding the lock, so nobody sees a half-removed file as live.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(tmp: &Path) -> StateDirs {
        StateDirs {
            data: tmp.join("data"),
            run: tmp.join("run"),
        }
    }

    #[test]
    fn lock_lifecycle() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dirs(tmp.path());
        d.prepare().unwrap();
        assert_eq!(d.liveness().unwrap(), Liveness::NotRunning);
        let lock = PidLock::acquire(&d).unwrap();
        assert_eq!(
            d.liveness().unwrap(),
            Liveness::Running {
                pid: std::process::id()
            }
        );
        // flock locks belong to the open file description, so a second acquire in the same
        // process is refused just as one from another process would be.
        match PidLock::acquire(&d) {
            Err(StateError::AlreadyRunning { pid, .. }) => assert_eq!(pid, std::process::id()),
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        drop(lock);
        assert_eq!(d.liveness().unwrap(), Liveness::NotRunning);
    }

    #[test]
    fn stale_pid_file_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dirs(tmp.path());
        d.prepare().unwrap();
        fs::write(d.pid_file(), "999999\n").unwrap();
        assert_eq!(d.liveness().unwrap(), Liveness::Stale);
        let _lock = PidLock::acquire(&d).unwrap();
        assert_eq!(
            fs::read_to_string(d.pid_file()).unwrap().trim(),
            std::process::id().to_string()
        );
    }

    #[test]
    fn unwritable_dir_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        fs::write(&file, "").unwrap();
        let d = StateDirs {
            data: file.join("data"),
            run: tmp.path().join("run"),
        };
        let err = d.prepare().unwrap_err().to_string();
        assert!(err.contains("cannot use data directory"), "{err}");
        assert!(err.contains("--data-dir"), "{err}");
    }
}
