//! One connection's sleeve state machine (reference §4.4), as far as establishing the
//! connection goes.
//!
//! 1. Confirm (when the mesh adds the connection): heartbeat every 500 ms; the outbound side
//!    knows the peer's UDP address (its TCP address, mesh port) and sends one at once; a 60 s
//!    heartbeat timeout is armed.
//! 2. First valid heartbeat received (connection UID matches): learn or refresh the peer's
//!    UDP address and send ConnectionEstablished over TCP, once.
//! 3. ConnectionEstablished received over TCP (the peer got our UDP): heartbeats slow to
//!    10 s and the connection is *established*.
//! 4. No valid heartbeat for 60 s: the link fails and the caller closes the connection.
//!
//! A Weave peer also sends a fragmentation test and MTU tests; they are answered with
//! FragmentationReceived and PMTUVerified so its path MTU discovery completes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weft_crypto::{
    SessionKey, Side, SleeveDecryptor, SleeveEncryptor, SleeveStream, SLEEVE_OVERHEAD,
};
use weft_mesh::PeerName;

use crate::packet::{self, Special};

/// Inner tags of the sleeve's control messages over TCP.
pub const CONNECTION_ESTABLISHED: u8 = 1;
pub const FRAGMENTATION_RECEIVED: u8 = 2;
pub const PMTU_VERIFIED: u8 = 3;

const FAST_HEARTBEAT: Duration = Duration::from_millis(500);
/// Weave's heartbeat interval once established.
pub const SLOW_HEARTBEAT: Duration = Duration::from_secs(10);
/// Weave's heartbeat timeout (6 missed slow heartbeats).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);

/// What the link needs to know about its connection.
#[derive(Clone)]
pub struct LinkConfig {
    pub local: PeerName,
    pub remote: PeerName,
    pub conn_uid: u64,
    /// We dialled the TCP connection.
    pub outbound: bool,
    /// The peer's UDP address when known up front (outbound: its TCP address).
    pub remote_addr: Option<SocketAddr>,
    /// The session key, when sleeve traffic is encrypted.
    pub session_key: Option<SessionKey>,
    /// Heartbeat interval once established (Weave: [`SLOW_HEARTBEAT`]).
    pub heartbeat_interval: Duration,
    /// Silence after which the link fails (Weave: [`HEARTBEAT_TIMEOUT`]). A weft peer that
    /// says it sends heartbeats often can be given a shorter one, so a dead path is noticed
    /// in seconds.
    pub heartbeat_timeout: Duration,
}

/// What the link asks of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Send this sleeve control message (inner tag, data) over the TCP connection.
    SendControl(u8, Vec<u8>),
    /// The data path works both ways: mark the mesh connection established.
    Established,
    /// The link failed: close the connection.
    Failed(String),
}

/// Why a datagram was dropped (counted by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("malformed sleeve packet: {0}")]
    Malformed(#[from] packet::PacketError),
    #[error("sleeve packet failed authentication")]
    Decrypt,
    #[error("replayed sleeve packet")]
    Replay,
    #[error("heartbeat for another connection")]
    WrongConnection,
}

struct Crypto {
    heartbeat: SleeveEncryptor,
    plain: SleeveEncryptor,
    open: SleeveDecryptor,
}

/// The sleeve side of one mesh connection.
pub struct HeartbeatLink {
    cfg: LinkConfig,
    crypto: Option<Crypto>,
    remote_addr: Option<SocketAddr>,
    interval: Duration,
    next_heartbeat: Instant,
    deadline: Instant,
    sent_established: bool,
    established: bool,
    failed: bool,
    transmit: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<LinkEvent>,
}

impl HeartbeatLink {
    /// Confirm the link (the mesh accepted the connection).
    pub fn new(cfg: LinkConfig, now: Instant) -> Self {
        let crypto = cfg.session_key.as_ref().map(|key| {
            let side = Side::from_outbound(cfg.outbound);
            let name = cfg.local.to_bytes();
            Crypto {
                heartbeat: SleeveEncryptor::new(key, side, name, SleeveStream::Df),
                plain: SleeveEncryptor::new(key, side, name, SleeveStream::NonDf),
                open: SleeveDecryptor::new(key, side),
            }
        });
        let deadline = now + cfg.heartbeat_timeout;
        let mut link = HeartbeatLink {
            remote_addr: cfg.remote_addr,
            cfg,
            crypto,
            interval: FAST_HEARTBEAT,
            next_heartbeat: now,
            deadline,
            sent_established: false,
            established: false,
            failed: false,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        };
        link.handle_timeout(now);
        link
    }

    pub fn remote(&self) -> PeerName {
        self.cfg.remote
    }

    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The peer's UDP address, once known.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// Build a datagram carrying `frame` (one special frame) from us to the peer.
    fn datagram(&mut self, frame: &[u8], df: bool) -> Option<Vec<u8>> {
        let mut list = Vec::with_capacity(frame.len() + packet::FRAME_HEADER_LEN);
        if !packet::push_frame(&mut list, self.cfg.local, self.cfg.remote, frame) {
            return None;
        }
        match &mut self.crypto {
            None => {
                let mut out = self.cfg.local.to_bytes().to_vec();
                out.extend_from_slice(&list);
                Some(out)
            }
            Some(c) => {
                let enc = if df { &mut c.heartbeat } else { &mut c.plain };
                let mut out = vec![0u8; list.len() + SLEEVE_OVERHEAD];
                let n = enc.seal_into(&list, &mut out).ok()?;
                out.truncate(n);
                Some(out)
            }
        }
    }

    fn send_heartbeat(&mut self) {
        let Some(addr) = self.remote_addr else {
            return;
        };
        let frame = packet::heartbeat_frame(self.cfg.conn_uid);
        if let Some(d) = self.datagram(&frame, true) {
            self.transmit.push_back((addr, d));
        }
    }

    /// A datagram from `from` whose sender name is this link's peer.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Result<(), DropReason> {
        let list: &[u8] = match &mut self.crypto {
            None => datagram
                .get(6..)
                .ok_or(packet::PacketError::NoSender(datagram.len()))?,
            Some(c) => match c.open.open_in_place(datagram) {
                Ok(Some(plain)) => plain,
                Ok(None) => return Err(DropReason::Replay),
                Err(_) => return Err(DropReason::Decrypt),
            },
        };
        let mut answers = Vec::new();
        let mut heartbeat = false;
        for frame in packet::frames(list) {
            let frame = frame?;
            match packet::special(frame.data) {
                Some(Special::Heartbeat(uid)) if uid == self.cfg.conn_uid => heartbeat = true,
                Some(Special::Heartbeat(_)) => return Err(DropReason::WrongConnection),
                Some(Special::FragTest) => answers.push((FRAGMENTATION_RECEIVED, Vec::new())),
                Some(Special::MtuTest(len)) => {
                    let mtu = u16::try_from(len.saturating_sub(14)).unwrap_or(u16::MAX);
                    answers.push((PMTU_VERIFIED, mtu.to_be_bytes().to_vec()));
                }
                // Ethernet frames are the data plane's; not forwarded yet.
                None => {}
            }
        }
        for (tag, data) in answers {
            self.events.push_back(LinkEvent::SendControl(tag, data));
        }
        if heartbeat {
            self.deadline = now + self.cfg.heartbeat_timeout;
            let first = self.remote_addr.is_none();
            self.remote_addr = Some(from);
            if first {
                self.send_heartbeat();
            }
            if !self.sent_established {
                self.sent_established = true;
                self.events
                    .push_back(LinkEvent::SendControl(CONNECTION_ESTABLISHED, Vec::new()));
            }
        }
        Ok(())
    }

    /// A sleeve control message from the peer over TCP.
    pub fn handle_control(&mut self, now: Instant, tag: u8, _data: &[u8]) {
        if tag == CONNECTION_ESTABLISHED && !self.established {
            self.established = true;
            self.interval = self.cfg.heartbeat_interval;
            self.next_heartbeat = now + self.interval;
            self.events.push_back(LinkEvent::Established);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.failed {
            return;
        }
        if now >= self.deadline {
            self.failed = true;
            self.events.push_back(LinkEvent::Failed(
                "timed out waiting for UDP heartbeat".into(),
            ));
            return;
        }
        if now >= self.next_heartbeat {
            self.send_heartbeat();
            self.next_heartbeat = now + self.interval;
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.failed).then(|| self.next_heartbeat.min(self.deadline))
    }

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(
        key: Option<[u8; 32]>,
    ) -> (
        HeartbeatLink,
        HeartbeatLink,
        SocketAddr,
        SocketAddr,
        Instant,
    ) {
        let now = Instant::now();
        let a_name: PeerName = "::1".parse().unwrap();
        let b_name: PeerName = "::2".parse().unwrap();
        let a_addr: SocketAddr = "198.18.0.1:6783".parse().unwrap();
        let b_addr: SocketAddr = "198.18.0.2:6783".parse().unwrap();
        let key = key.map(SessionKey::from_bytes);
        let a = HeartbeatLink::new(
            LinkConfig {
                local: a_name,
                remote: b_name,
                conn_uid: 77,
                outbound: true,
                remote_addr: Some(b_addr),
                session_key: key.clone(),
                heartbeat_interval: SLOW_HEARTBEAT,
                heartbeat_timeout: HEARTBEAT_TIMEOUT,
            },
            now,
        );
        let b = HeartbeatLink::new(
            LinkConfig {
                local: b_name,
                remote: a_name,
                conn_uid: 77,
                outbound: false,
                remote_addr: None,
                session_key: key,
                heartbeat_interval: SLOW_HEARTBEAT,
                heartbeat_timeout: HEARTBEAT_TIMEOUT,
            },
            now,
        );
        (a, b, a_addr, b_addr, now)
    }

    fn run(key: Option<[u8; 32]>) {
        let (mut a, mut b, a_addr, _b_addr, now) = pair(key);
        let (_, mut d) = a.poll_transmit().expect("outbound side sends at once");
        assert!(
            b.poll_transmit().is_none(),
            "inbound side waits to learn the address"
        );
        b.handle_datagram(now, a_addr, &mut d).unwrap();
        assert_eq!(b.remote_addr(), Some(a_addr));
        let (to, mut back) = b.poll_transmit().expect("answered at once");
        assert_eq!(to, a_addr);
        assert_eq!(
            b.poll_event(),
            Some(LinkEvent::SendControl(CONNECTION_ESTABLISHED, vec![]))
        );
        a.handle_datagram(now, "198.18.0.2:6783".parse().unwrap(), &mut back)
            .unwrap();
        assert_eq!(
            a.poll_event(),
            Some(LinkEvent::SendControl(CONNECTION_ESTABLISHED, vec![]))
        );
        a.handle_control(now, CONNECTION_ESTABLISHED, &[]);
        b.handle_control(now, CONNECTION_ESTABLISHED, &[]);
        assert_eq!(a.poll_event(), Some(LinkEvent::Established));
        assert_eq!(b.poll_event(), Some(LinkEvent::Established));
        // Slow heartbeats after that; a minute of silence fails the link.
        assert_eq!(a.poll_timeout(), Some(now + SLOW_HEARTBEAT));
        a.handle_timeout(now + HEARTBEAT_TIMEOUT);
        assert!(matches!(a.poll_event(), Some(LinkEvent::Failed(_))));
    }

    #[test]
    fn establishes_in_clear() {
        run(None);
    }

    #[test]
    fn establishes_encrypted_and_drops_replays_and_forgeries() {
        run(Some([7; 32]));
        let (mut a, mut b, a_addr, _, now) = pair(Some([7; 32]));
        let (_, d) = a.poll_transmit().unwrap();
        let mut first = d.clone();
        b.handle_datagram(now, a_addr, &mut first).unwrap();
        let mut again = d.clone();
        assert_eq!(
            b.handle_datagram(now, a_addr, &mut again),
            Err(DropReason::Replay)
        );
        let mut forged = d.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(
            b.handle_datagram(now, a_addr, &mut forged),
            Err(DropReason::Decrypt)
        );
        // Wrong key: nothing decrypts.
        let (mut c, _, _, _, _) = pair(Some([8; 32]));
        let (_, mut other) = c.poll_transmit().unwrap();
        assert_eq!(
            b.handle_datagram(now, a_addr, &mut other),
            Err(DropReason::Decrypt)
        );
    }

    #[test]
    fn answers_weave_mtu_and_frag_tests() {
        let (mut a, mut b, a_addr, _, now) = pair(None);
        let _ = a.poll_transmit();
        let mut d = a.datagram(&vec![0u8; 1452], true).unwrap();
        b.handle_datagram(now, a_addr, &mut d).unwrap();
        assert_eq!(
            b.poll_event(),
            Some(LinkEvent::SendControl(
                PMTU_VERIFIED,
                1438u16.to_be_bytes().to_vec()
            ))
        );
        let mut d = a
            .datagram(&vec![0u8; packet::FRAG_TEST_LEN], false)
            .unwrap();
        b.handle_datagram(now, a_addr, &mut d).unwrap();
        assert_eq!(
            b.poll_event(),
            Some(LinkEvent::SendControl(FRAGMENTATION_RECEIVED, vec![]))
        );
        let mut wrong = a.datagram(&packet::heartbeat_frame(5), true).unwrap();
        assert_eq!(
            b.handle_datagram(now, a_addr, &mut wrong),
            Err(DropReason::WrongConnection)
        );
    }
}
