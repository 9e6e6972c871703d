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
use std::time::{Duration, Instant};

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
    /// The router holding the pid file is dying (killed, or returning from `main`): its lock
    /// goes away as soon as the kernel has closed its files, which can take a moment while
    /// its TAP and sockets are torn down.
    Exiting { pid: u32 },
}

/// The kernel's `PF_EXITING` task flag (`include/linux/sched.h`): set when a task enters
/// `do_exit`, before its files are closed.
const PF_EXITING: u64 = 0x4;

/// Whether process `pid` is on its way out: a SIGKILL is pending for it (`kill -9` has
/// returned but its threads have not run yet), its leader has started exiting or is a zombie,
/// or it is gone already. Reads `/proc/<pid>/stat` (state is field 3, flags field 9) and
/// `/proc/<pid>/status` (`SigPnd`, `ShdPnd`).
pub fn process_exiting(pid: u32) -> bool {
    let gone = |e: &io::Error| {
        e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(Errno::ESRCH as i32)
    };
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) if stat_says_exiting(&stat) => return true,
        Ok(_) => {}
        // No such process any more: whatever still holds the lock is about to let go.
        Err(e) => return gone(&e),
    }
    match fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => status_has_sigkill_pending(&status),
        Err(e) => gone(&e),
    }
}

/// Whether `pid` is exiting, looking a few times over a few milliseconds: between taking a
/// SIGKILL off its pending set and flagging itself as exiting a thread shows neither, so one
/// look at that instant would take a dying router for a running one.
fn exiting_soon(pid: u32) -> bool {
    for look in 0..EXIT_LOOKS {
        if process_exiting(pid) {
            return true;
        }
        if look + 1 < EXIT_LOOKS {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    false
}

const EXIT_LOOKS: usize = 3;

/// SIGKILL (9) in a `/proc/<pid>/status` pending-signal mask.
const SIGKILL_BIT: u64 = 1 << (9 - 1);

/// Whether a SIGKILL waits to be taken by the process (`ShdPnd`, sent to the thread group) or
/// by its leader (`SigPnd`: a fatal signal is queued to every thread at once).
fn status_has_sigkill_pending(status: &str) -> bool {
    status.lines().any(|l| {
        let Some((key, mask)) = l.split_once(':') else {
            return false;
        };
        matches!(key, "SigPnd" | "ShdPnd")
            && u64::from_str_radix(mask.trim(), 16).is_ok_and(|m| m & SIGKILL_BIT != 0)
    })
}

/// Parse a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn stat_says_exiting(stat: &str) -> bool {
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return false;
    };
    let mut fields = rest.split_whitespace();
    let state = fields.next().unwrap_or("");
    // After the state: ppid, pgrp, session, tty_nr, tpgid, then flags.
    let flags = fields
        .nth(5)
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0);
    matches!(state, "Z" | "X" | "x") || flags & PF_EXITING != 0
}

/// Every file weft keeps in the data directory (with the temporary names their atomic
/// writes use). `weft reset` removes exactly these: a feature that adds a state file adds
/// it here (the reset end-to-end test fails on any file left behind).
pub const DATA_FILES: &[&str] = &[
    "peer-name",
    "peer-name.tmp",
    "targets.json",
    "targets.tmp",
    crate::firewall::PORTS_FILE,
    "ipam.redb",
    "ports.json.tmp",
];

impl StateDirs {
    /// Removes weft's files from the data directory ([`DATA_FILES`]); the names removed.
    pub fn remove_data_files(&self) -> std::io::Result<Vec<&'static str>> {
        let mut removed = Vec::new();
        for name in DATA_FILES {
            match std::fs::remove_file(self.data.join(name)) {
                Ok(()) => removed.push(*name),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

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
                Some(pid) if exiting_soon(pid) => Liveness::Exiting { pid },
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

impl StateDirs {
    /// Wait, at most `timeout`, for a router that is exiting to let go of the pid file, and
    /// return what is left: [`Liveness::Exiting`] only if it is still dying at the deadline.
    /// A running router (or none) is returned at once. `slow` is called once, with the dying
    /// router's pid, if the wait lasts longer than [`EXIT_WAIT_QUIET`], so the caller can say
    /// what it is waiting for.
    pub fn wait_for_exiting(
        &self,
        timeout: Duration,
        mut slow: impl FnMut(u32),
    ) -> Result<Liveness, StateError> {
        let start = Instant::now();
        let mut told = false;
        loop {
            let now = self.liveness()?;
            let Liveness::Exiting { pid } = now else {
                return Ok(now);
            };
            let waited = start.elapsed();
            if waited >= timeout {
                return Ok(now);
            }
            if !told && waited >= EXIT_WAIT_QUIET {
                told = true;
                slow(pid);
            }
            std::thread::sleep(EXIT_WAIT_POLL);
        }
    }
}

/// How long waiting for a dying router stays silent.
pub const EXIT_WAIT_QUIET: Duration = Duration::from_millis(500);
/// How long `launch` and `router` wait, at most, for a dying router to let go of the pid file.
pub const EXIT_WAIT: Duration = Duration::from_secs(10);
const EXIT_WAIT_POLL: Duration = Duration::from_millis(10);

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
    fn stat_lines_tell_exiting_from_running() {
        // A running router: state S, flags without PF_EXITING.
        assert!(!stat_says_exiting(
            "4242 (weft) S 1 4242 4242 0 -1 4194560 300 0 0 0 1 2 0 0 20 0 9 0 100"
        ));
        // Killed: the leader has entered do_exit (PF_EXITING) while its threads tear down.
        assert!(stat_says_exiting(
            "4242 (weft) R 1 4242 4242 0 -1 4194564 300 0 0 0 1 2 0 0 20 0 9 0 100"
        ));
        // The leader is a zombie while other threads still exit.
        assert!(stat_says_exiting(
            "4242 (weft) Z 1 4242 4242 0 -1 4194308 300 0 0 0 1 2 0 0 20 0 9 0 100"
        ));
        // Spaces and parentheses in the command name do not shift the fields.
        assert!(!stat_says_exiting(
            "4242 (we ft) (x) Z) S 1 4242 4242 0 -1 4194560 300 0 0 0 1 2 0 0 20 0 9 0 100"
        ));
        assert!(!stat_says_exiting("garbage"));
    }

    #[test]
    fn pending_sigkill_counts_as_exiting() {
        let status = |sig: &str, shd: &str| {
            format!("Name:\tweft\nState:\tS (sleeping)\nSigPnd:\t{sig}\nShdPnd:\t{shd}\nSigBlk:\t0000000000000100\n")
        };
        assert!(!status_has_sigkill_pending(&status(
            "0000000000000000",
            "0000000000000000"
        )));
        // SIGTERM (15) pending is a graceful stop in progress, not a dying process.
        assert!(!status_has_sigkill_pending(&status(
            "0000000000000000",
            "0000000000004000"
        )));
        assert!(status_has_sigkill_pending(&status(
            "0000000000000100",
            "0000000000000000"
        )));
        assert!(status_has_sigkill_pending(&status(
            "0000000000000000",
            "0000000000000100"
        )));
        // A blocked mask with bit 9 (impossible for SIGKILL, but parsed) is not "pending".
        assert!(!status_has_sigkill_pending("SigBlk:\t0000000000000100\n"));
    }

    #[test]
    fn live_and_dead_processes() {
        let mut running = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(!process_exiting(running.id()));
        running.kill().unwrap();
        // Until it is reaped the killed child is a zombie, which counts as exiting.
        let pid = running.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !process_exiting(pid) {
            assert!(
                Instant::now() < deadline,
                "killed child never showed as exiting"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        running.wait().unwrap();
        // Reaped: gone, which also counts (whoever holds a lock is about to let go).
        assert!(process_exiting(pid));
    }

    #[test]
    fn waiting_returns_at_once_for_a_running_router() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dirs(tmp.path());
        d.prepare().unwrap();
        let _lock = PidLock::acquire(&d).unwrap();
        let start = Instant::now();
        let live = d
            .wait_for_exiting(Duration::from_secs(10), |_| panic!("not exiting"))
            .unwrap();
        assert_eq!(
            live,
            Liveness::Running {
                pid: std::process::id()
            }
        );
        assert!(start.elapsed() < Duration::from_secs(2));
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
