//! The connection maker: which addresses this router should dial, and when.
//!
//! Targets come from the command line and `weft connect` ("direct" targets, kept as the user
//! typed them and persisted) and, unless discovery is off, from the topology (addresses of
//! peers our peers are connected to). Each target address is waiting (with a retry time),
//! attempting, connected or suspended. Failed dials back off: the first try is immediate, then
//! `interval/2 + rand[0, interval)` with the interval starting at 2 s, growing ×1.5 up to
//! 6 min. A connection that lived more than a minute is retried at once when it drops. Name
//! collisions and connections to ourselves are never retried.
//!
//! Pure: time comes in as `Instant`s, randomness from a seeded generator, and dials go out as
//! [`Dial`] actions that the caller performs and reports back.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::rng::SplitMix;

/// The mesh port Weave uses when a target names none.
pub const DEFAULT_PORT: u16 = 6783;
const INITIAL_INTERVAL: Duration = Duration::from_secs(2);
const MAX_INTERVAL: Duration = Duration::from_secs(6 * 60);
/// A connection up for longer than this is redialled at once when it drops.
const RESET_AFTER: Duration = Duration::from_secs(60);

/// A dial the caller should make. `must_be_known`: the handshake must fail if the remote
/// name is not already in our topology (discovered targets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub address: String,
    pub must_be_known: bool,
}

/// What a target is doing, for `weft status connections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetState {
    Waiting { retry_at: Instant },
    Attempting,
    Connected,
    Suspended,
}

/// One target address and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStatus {
    pub address: String,
    pub state: TargetState,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// Invalid `connect`/`forget` input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid peer {peer:?}: {why}")]
pub struct TargetError {
    pub peer: String,
    pub why: &'static str,
}

#[derive(Debug, Clone)]
struct Target {
    state: TargetState,
    interval: Duration,
    /// When the current or last attempt was scheduled.
    scheduled: Instant,
    last_error: Option<String>,
    /// No port given: skip while an inbound connection from that host exists.
    portless: bool,
}

/// A live connection, as the maker needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Live {
    /// The target address we dialled, for outbound connections.
    target: Option<String>,
    remote_ip: IpAddr,
}

/// Normalise `<ip_address_or_fqdn>[:<port>]` to `host:port`; `(address, had_port)`.
pub fn normalise_target(peer: &str, default_port: u16) -> Result<(String, bool), TargetError> {
    let bad = |why| TargetError {
        peer: peer.to_owned(),
        why,
    };
    let peer_trim = peer.trim();
    if peer_trim.is_empty() {
        return Err(bad("empty"));
    }
    // [v6]:port, v6, host:port, host
    let (host, port) = if let Some(rest) = peer_trim.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or(bad("unclosed '['"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(bad("garbage after ']'")),
        }
    } else if peer_trim.matches(':').count() > 1 {
        (peer_trim, None) // a bare IPv6 address
    } else {
        match peer_trim.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (peer_trim, None),
        }
    };
    let host_ok = !host.is_empty()
        && (host.parse::<IpAddr>().is_ok()
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'));
    if !host_ok {
        return Err(bad("not an IP address or host name"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or(bad("port must be 1-65535"))?,
        ),
    };
    let host_part = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Ok((
        format!("{host_part}:{}", port.unwrap_or(default_port)),
        port.is_some(),
    ))
}

/// The host part of a normalised target address.
fn target_host(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The connection maker. See the module docs.
#[derive(Debug, Clone)]
pub struct ConnectionMaker {
    port: u16,
    discovery: bool,
    conn_limit: usize,
    /// Direct targets as the user typed them, in the order given.
    direct: Vec<String>,
    discovered: BTreeSet<String>,
    targets: BTreeMap<String, Target>,
    live: BTreeMap<u64, Live>,
    never_retry: BTreeSet<String>,
    dials: VecDeque<Dial>,
    jitter: SplitMix,
}

impl ConnectionMaker {
    /// `conn_limit` 0 means unlimited. `seed` drives the retry jitter.
    pub fn new(port: u16, discovery: bool, conn_limit: usize, seed: u64) -> Self {
        ConnectionMaker {
            port,
            discovery,
            conn_limit,
            direct: Vec::new(),
            discovered: BTreeSet::new(),
            targets: BTreeMap::new(),
            live: BTreeMap::new(),
            never_retry: BTreeSet::new(),
            dials: VecDeque::new(),
            jitter: SplitMix(seed),
        }
    }

    /// Add direct targets (or replace them all). Nothing changes if any is invalid.
    pub fn connect(
        &mut self,
        now: Instant,
        peers: &[String],
        replace: bool,
    ) -> Result<(), Vec<TargetError>> {
        let errors: Vec<TargetError> = peers
            .iter()
            .filter_map(|p| normalise_target(p, self.port).err())
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        if replace {
            self.direct.clear();
        }
        for p in peers {
            let p = p.trim().to_owned();
            if !self.direct.contains(&p) {
                self.direct.push(p);
            }
        }
        self.evaluate(now);
        Ok(())
    }

    /// Remove direct targets (given as typed, or in any form that normalises the same).
    pub fn forget(&mut self, now: Instant, peers: &[String]) {
        let port = self.port;
        let gone: BTreeSet<String> = peers
            .iter()
            .filter_map(|p| normalise_target(p, port).ok().map(|(a, _)| a))
            .collect();
        self.direct.retain(|d| {
            normalise_target(d, port).map_or(true, |(a, _)| !gone.contains(&a))
                && !peers.iter().any(|p| p.trim() == d)
        });
        self.evaluate(now);
    }

    /// The direct targets as typed, for `weft status targets` and persistence.
    pub fn direct_targets(&self) -> &[String] {
        &self.direct
    }

    /// Replace the set of addresses discovered from the topology.
    pub fn set_discovered(&mut self, now: Instant, addresses: impl IntoIterator<Item = String>) {
        if !self.discovery {
            return;
        }
        self.discovered = addresses
            .into_iter()
            .filter_map(|a| normalise_target(&a, self.port).ok().map(|(a, _)| a))
            .collect();
        self.evaluate(now);
    }

    /// A connection (outbound to `target`, or inbound) passed its handshake and was added.
    pub fn connection_up(
        &mut self,
        now: Instant,
        id: u64,
        target: Option<&str>,
        remote_ip: IpAddr,
    ) {
        self.live.insert(
            id,
            Live {
                target: target.map(str::to_owned),
                remote_ip,
            },
        );
        if let Some(t) = target.and_then(|t| self.targets.get_mut(t)) {
            t.state = TargetState::Connected;
            t.last_error = None;
        }
        self.evaluate(now);
    }

    /// A connection ended (after `connection_up`).
    pub fn connection_down(&mut self, now: Instant, id: u64, error: Option<String>) {
        let Some(live) = self.live.remove(&id) else {
            return;
        };
        if let Some(t) = live.target.as_deref().and_then(|t| self.targets.get_mut(t)) {
            t.last_error = error;
            if now.saturating_duration_since(t.scheduled) > RESET_AFTER {
                t.interval = INITIAL_INTERVAL;
                t.state = TargetState::Waiting { retry_at: now };
                t.scheduled = now;
            } else {
                Self::back_off(&mut self.jitter, t, now);
            }
        }
        self.evaluate(now);
    }

    /// A dial (or its handshake) failed before the connection was added. `permanent`: a
    /// name collision or a connection to ourselves; never retried.
    pub fn dial_failed(&mut self, now: Instant, address: &str, error: String, permanent: bool) {
        if permanent {
            self.never_retry.insert(address.to_owned());
        }
        if let Some(t) = self.targets.get_mut(address) {
            t.last_error = Some(error);
            Self::back_off(&mut self.jitter, t, now);
        }
        self.evaluate(now);
    }

    fn back_off(jitter: &mut SplitMix, t: &mut Target, now: Instant) {
        let wait = t.interval / 2 + jitter.duration_below(t.interval);
        t.state = TargetState::Waiting {
            retry_at: now + wait,
        };
        t.scheduled = now + wait;
        t.interval = (t.interval.mul_f64(1.5)).min(MAX_INTERVAL);
    }

    /// Dials that are due now; call after any input and on [`ConnectionMaker::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.evaluate(now);
    }

    /// The next dial to make.
    pub fn poll_dial(&mut self) -> Option<Dial> {
        self.dials.pop_front()
    }

    /// When the next waiting target comes due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.targets
            .values()
            .filter_map(|t| match t.state {
                TargetState::Waiting { retry_at } => Some(retry_at),
                _ => None,
            })
            .min()
    }

    /// Every target that is not connected, for `weft status connections`.
    pub fn status(&self) -> Vec<TargetStatus> {
        self.targets
            .iter()
            .filter(|(_, t)| !matches!(t.state, TargetState::Connected | TargetState::Suspended))
            .map(|(a, t)| TargetStatus {
                address: a.clone(),
                state: t.state.clone(),
                last_error: t.last_error.clone(),
            })
            .collect()
    }

    fn wanted(&self) -> BTreeMap<String, (bool, bool)> {
        // address -> (direct, portless)
        let mut want = BTreeMap::new();
        for d in &self.direct {
            if let Ok((a, had_port)) = normalise_target(d, self.port) {
                want.insert(a, (true, !had_port));
            }
        }
        for a in &self.discovered {
            want.entry(a.clone()).or_insert((false, false));
        }
        want
    }

    fn evaluate(&mut self, now: Instant) {
        let wanted = self.wanted();
        let connected_targets: BTreeSet<&str> = self
            .live
            .values()
            .filter_map(|l| l.target.as_deref())
            .collect();
        let inbound_hosts: BTreeSet<String> = self
            .live
            .values()
            .filter(|l| l.target.is_none())
            .map(|l| l.remote_ip.to_string())
            .collect();
        // Drop targets nobody wants any more, unless a dial is in flight.
        self.targets
            .retain(|a, t| wanted.contains_key(a) || matches!(t.state, TargetState::Attempting));
        for (address, (direct, portless)) in &wanted {
            if self.never_retry.contains(address) {
                continue;
            }
            let covered = connected_targets.contains(address.as_str())
                || (*portless && inbound_hosts.contains(target_host(address)))
                || (!*direct && inbound_hosts.contains(target_host(address)));
            let t = self.targets.entry(address.clone()).or_insert(Target {
                state: TargetState::Waiting { retry_at: now },
                interval: INITIAL_INTERVAL,
                scheduled: now,
                last_error: None,
                portless: *portless,
            });
            t.portless = *portless;
            match (&t.state, covered) {
                (TargetState::Attempting, _) => {}
                (_, true) if connected_targets.contains(address.as_str()) => {
                    t.state = TargetState::Connected
                }
                (_, true) => t.state = TargetState::Suspended,
                (TargetState::Connected | TargetState::Suspended, false) => {
                    t.state = TargetState::Waiting { retry_at: now }
                }
                (TargetState::Waiting { .. }, false) => {}
            }
        }
        let mut busy = self.live.len()
            + self
                .targets
                .values()
                .filter(|t| t.state == TargetState::Attempting)
                .count();
        let due: Vec<String> = self
            .targets
            .iter()
            .filter(|(a, t)| {
                !self.never_retry.contains(*a)
                    && matches!(t.state, TargetState::Waiting { retry_at } if retry_at <= now)
            })
            .map(|(a, _)| a.clone())
            .collect();
        for address in due {
            if self.conn_limit > 0 && busy >= self.conn_limit {
                break;
            }
            if let Some(t) = self.targets.get_mut(&address) {
                t.state = TargetState::Attempting;
                t.scheduled = now;
                busy += 1;
                let must_be_known = !wanted.get(&address).is_some_and(|(direct, _)| *direct);
                self.dials.push_back(Dial {
                    address,
                    must_be_known,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn drain(m: &mut ConnectionMaker) -> Vec<String> {
        std::iter::from_fn(|| m.poll_dial())
            .map(|d| d.address)
            .collect()
    }

    #[test]
    fn normalises_targets() {
        assert_eq!(
            normalise_target("10.0.0.1", 6783),
            Ok(("10.0.0.1:6783".into(), false))
        );
        assert_eq!(
            normalise_target("host-2:7000", 6783),
            Ok(("host-2:7000".into(), true))
        );
        assert_eq!(
            normalise_target("::1", 6783),
            Ok(("[::1]:6783".into(), false))
        );
        assert_eq!(
            normalise_target("[::1]:9", 6783),
            Ok(("[::1]:9".into(), true))
        );
        for bad in ["", "a b", "h:0", "h:99999", "h:x", "[::1", "a/b"] {
            assert!(normalise_target(bad, 6783).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn first_try_is_immediate_then_backs_off() {
        let t0 = Instant::now();
        let mut m = ConnectionMaker::new(6783, true, 0, 1);
        m.connect(t0, &s(&["198.18.0.2"]), false).unwrap();
        assert_eq!(drain(&mut m), vec!["198.18.0.2:6783"]);
        m.dial_failed(t0, "198.18.0.2:6783", "connection refused".into(), false);
        let r1 = m.poll_timeout().unwrap() - t0;
        assert!(
            r1 >= Duration::from_secs(1) && r1 < Duration::from_secs(3),
            "{r1:?}"
        );
        assert!(drain(&mut m).is_empty());
        let t1 = t0 + r1;
        m.handle_timeout(t1);
        assert_eq!(drain(&mut m).len(), 1);
        m.dial_failed(t1, "198.18.0.2:6783", "refused".into(), false);
        let r2 = m.poll_timeout().unwrap() - t1;
        assert!(
            r2 >= Duration::from_millis(1500) && r2 < Duration::from_millis(4500),
            "{r2:?}"
        );
        let st = m.status();
        assert_eq!(st[0].last_error.as_deref(), Some("refused"));
    }

    #[test]
    fn backoff_is_capped() {
        let t0 = Instant::now();
        let mut m = ConnectionMaker::new(6783, true, 0, 7);
        m.connect(t0, &s(&["h"]), false).unwrap();
        let mut now = t0;
        for _ in 0..40 {
            drain(&mut m);
            m.dial_failed(now, "h:6783", "x".into(), false);
            now = m.poll_timeout().unwrap();
            m.handle_timeout(now);
        }
        drain(&mut m);
        m.dial_failed(now, "h:6783", "x".into(), false);
        let wait = m.poll_timeout().unwrap() - now;
        assert!(wait <= MAX_INTERVAL.mul_f64(1.5), "{wait:?}");
        assert!(wait >= MAX_INTERVAL / 2, "{wait:?}");
    }

    #[test]
    fn connected_targets_are_not_redialled_and_drop_is_retried() {
        let t0 = Instant::now();
        let mut m = ConnectionMaker::new(6783, true, 0, 1);
        m.connect(t0, &s(&["198.18.0.2"]), false).unwrap();
        drain(&mut m);
        m.connection_up(
            t0,
            1,
            Some("198.18.0.2:6783"),
            "198.18.0.2".parse().unwrap(),
        );
        m.handle_timeout(t0 + Duration::from_secs(100));
        assert!(drain(&mut m).is_empty());
        assert!(m.status().is_empty());
        // Up for more than a minute: redial at once.
        let t = t0 + Duration::from_secs(120);
        m.connection_down(t, 1, Some("EOF".into()));
        assert_eq!(drain(&mut m), vec!["198.18.0.2:6783"]);
    }

    #[test]
    fn portless_target_skipped_while_inbound_from_that_host() {
        let t0 = Instant::now();
        let mut m = ConnectionMaker::new(6783, true, 0, 1);
        m.connection_up(t0, 9, None, "198.18.0.3".parse().unwrap());
        m.connect(t0, &s(&["198.18.0.3"]), false).unwrap();
        assert!(drain(&mut m).is_empty());
        m.connection_down(t0, 9, None);
        assert_eq!(drain(&mut m), vec!["198.18.0.3:6783"]);
    }

    #[test]
    fn forget_replace_and_invalid() {
        let t0 = Instant::now();
        let mut m = ConnectionMaker::new(6783, true, 0, 1);
        m.connect(t0, &s(&["a", "b:7000"]), false).unwrap();
        assert_eq!(m.direct_targets(), &s(&["a", "b:7000"])[..]);
        assert!(m.connect(t0, &s(&["c", "bad host"]), false).is_err());
        assert_eq!(
            m.direct_targets().len(),
            2,
            "nothing changes on invalid input"
        );
        m.forget(t0, &s(&["a:6783"]));
        assert_eq!(m.direct_targets(), &s(&["b:7000"])[..]);
        m.connect(t0, &s(&["c"]), true).unwrap();
        assert_eq!(m.direct_targets(), &s(&["c"])[..]);
    }

    #[test]
    fn conn_limit_and_never_retry() {
        let t0 = Instant::now();
        let mut m = ConnectionMaker::new(6783, true, 2, 1);
        m.connect(t0, &s(&["a", "b", "c"]), false).unwrap();
        assert_eq!(drain(&mut m).len(), 2);
        m.dial_failed(t0, "a:6783", "cannot connect to ourself".into(), true);
        // The freed slot goes to the third target; "a" never again.
        assert_eq!(drain(&mut m), vec!["c:6783"]);
        m.handle_timeout(t0 + Duration::from_secs(3600));
        assert!(drain(&mut m).iter().all(|a| a != "a:6783"));
    }

    #[test]
    fn discovery_adds_and_removes_targets() {
        let t0 = Instant::now();
        let mut m = ConnectionMaker::new(6783, true, 0, 1);
        m.set_discovered(t0, s(&["198.18.0.9:6783"]));
        let d = m.poll_dial().unwrap();
        assert!(d.must_be_known);
        m.dial_failed(t0, "198.18.0.9:6783", "x".into(), false);
        m.set_discovered(t0, Vec::new());
        assert!(m.status().is_empty(), "no longer wanted, so gone");
        let mut off = ConnectionMaker::new(6783, false, 0, 1);
        off.set_discovered(t0, s(&["198.18.0.9:6783"]));
        assert!(off.poll_dial().is_none());
    }
}
