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
//!
//! Once established the link runs Weave's own discovery (reference §4.4 step 3, §4.5): a
//! 60001-byte fragmentation test on the non-DF path now and every 5 min (each resets
//! `stack_frag` until FragmentationReceived comes back), and one 60000-byte special frame on
//! the DF path. The caller sends DF datagrams ([`Transmit::df`]) on its DF socket; when the
//! kernel refuses one with `EMSGSIZE` it reads `IP_MTU` and calls
//! [`HeartbeatLink::handle_emsgsize`], which starts the MTU verification: tests of
//! candidate + 14 zero bytes, each retried up to 8 times after `10 ms << attempts`, binary
//! search between highestGood (552) and lowestBad, until `highestGood + 1 ≥ lowestBad`.
//!
//! Data: [`HeartbeatLink::encode_frames`] packs frames into one datagram (≤ 100 frames, within
//! the DF or non-DF payload limit) in a caller buffer and seals it with this link's DF or
//! non-DF encryptor; [`HeartbeatLink::handle_datagram_frames`] hands every received Ethernet
//! frame to a callback, borrowed from the (decrypted) datagram buffer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weft_crypto::{
    SessionKey, Side, SleeveDecryptor, SleeveEncryptor, SleeveStream, SLEEVE_OVERHEAD,
};
use weft_mesh::PeerName;

use crate::packet::{self, Frame, OutFrame, Packed, Special, FRAME_HEADER_LEN};

/// Inner tags of the sleeve's control messages over TCP.
pub const CONNECTION_ESTABLISHED: u8 = 1;
pub const FRAGMENTATION_RECEIVED: u8 = 2;
pub const PMTU_VERIFIED: u8 = 3;

const FAST_HEARTBEAT: Duration = Duration::from_millis(500);
/// Weave's heartbeat interval once established.
pub const SLOW_HEARTBEAT: Duration = Duration::from_secs(10);
/// Weave's heartbeat timeout (6 missed slow heartbeats).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);
/// Weave's `FragTestInterval`.
pub const FRAG_TEST_INTERVAL: Duration = Duration::from_secs(300);
/// Weave's `MTUVerifyAttempts`.
pub const MTU_VERIFY_ATTEMPTS: u32 = 8;
/// Weave's `MTUVerifyTimeout`: the first wait; doubled with each attempt.
pub const MTU_VERIFY_TIMEOUT: Duration = Duration::from_millis(10);
/// The starting highestGood of an MTU search (the floor a silent peer drags the MTU to).
pub const MTU_FLOOR: u16 = 552;
/// Weave's `DefaultMTU`: the sleeve MTU before discovery.
pub const DEFAULT_MTU: u16 = 65_535;

/// One datagram to send to the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub addr: SocketAddr,
    pub data: Vec<u8>,
    /// Send on the DF path (Weave's raw socket with `IP_PMTUDISC_DO`); otherwise on the shared
    /// non-DF UDP socket.
    pub df: bool,
}

/// Why [`HeartbeatLink::encode_frames`] could not build a datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The peer's UDP address is not known yet (Weave: "awaiting contact"); drop the frames.
    #[error("peer UDP address not known yet")]
    AwaitingContact,
    #[error("sleeve encryption failed: {0}")]
    Crypto(#[from] weft_crypto::CryptoError),
}

/// The MTU search state (Weave's mtuCandidate, mtuHighestGood, mtuLowestBad, mtuTestsSent).
#[derive(Debug, Clone, Copy, Default)]
struct MtuSearch {
    /// 0 until the first `EMSGSIZE`; afterwards the last candidate tested.
    candidate: u16,
    highest_good: u16,
    lowest_bad: u16,
    tests_sent: u32,
    /// When the outstanding MTU test times out; `None` when no test is outstanding.
    test_deadline: Option<Instant>,
}

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
    transmit: VecDeque<Transmit>,
    events: VecDeque<LinkEvent>,
    /// The MTU frames are sent with (Weave's `fwd.mtu`).
    mtu: u16,
    /// Largest DF datagram (UDP payload) the path takes (Weave's `maxPayload`).
    max_payload: usize,
    verified: Option<u16>,
    search: MtuSearch,
    stack_frag: bool,
    next_frag_test: Option<Instant>,
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
            mtu: DEFAULT_MTU,
            max_payload: packet::MAX_UDP_PAYLOAD,
            verified: None,
            search: MtuSearch::default(),
            stack_frag: false,
            next_frag_test: None,
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

    /// The verified path MTU for overlay IP packets (e.g. 1438 on a clear 1500-byte underlay),
    /// once the MTU search has finished.
    pub fn mtu(&self) -> Option<u16> {
        self.verified
    }

    /// The largest overlay MTU known to get through: the verified one, or while a search is
    /// running the highest candidate verified so far (at least [`MTU_FLOOR`]); `None` before
    /// discovery started. Unlike [`current_mtu`](Self::current_mtu) this never names a size
    /// that may be lost on a path that silently drops big packets.
    pub fn known_good_mtu(&self) -> Option<u16> {
        match (self.verified, self.search.candidate) {
            (Some(v), _) => Some(v),
            (None, 0) => None,
            (None, _) => Some(self.search.highest_good),
        }
    }

    /// The MTU frames are sent with now: [`DEFAULT_MTU`] before discovery, the candidate while
    /// verifying, the verified value after (Weave's `fwd.mtu`). Compare with an IPv4 frame's
    /// length − 14 for the DF too-big check.
    pub fn current_mtu(&self) -> u16 {
        self.mtu
    }

    /// Whether the peer received our last fragmentation test, i.e. the host stack may be left
    /// to fragment big non-DF datagrams (Weave's `stackFrag`).
    pub fn stack_frag(&self) -> bool {
        self.stack_frag
    }

    /// The largest datagram (UDP payload) for the DF or the non-DF path.
    pub fn max_payload(&self, df: bool) -> usize {
        if df {
            self.max_payload
        } else {
            packet::MAX_UDP_PAYLOAD
        }
    }

    /// Bytes between an overlay IP packet and the underlay's PMTU on the DF path (Weave's
    /// `overheadDF`): 62 in clear, 86 encrypted.
    pub fn overhead_df(&self) -> usize {
        packet::UDP_IP_OVERHEAD + self.header_len() + FRAME_HEADER_LEN + packet::ETHERNET_OVERHEAD
    }

    fn header_len(&self) -> usize {
        if self.crypto.is_some() {
            SLEEVE_OVERHEAD
        } else {
            packet::CLEAR_HEADER_LEN
        }
    }

    /// Status attributes once the MTU is verified: `[("mtu", "1438")]`; empty before.
    pub fn attrs(&self) -> Vec<(&'static str, String)> {
        self.verified
            .map(|m| vec![("mtu", m.to_string())])
            .unwrap_or_default()
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
        if let Some(data) = self.datagram(&frame, true) {
            self.transmit.push_back(Transmit {
                addr,
                data,
                df: true,
            });
        }
    }

    /// An all-zero special frame of `len` bytes.
    fn send_zeros(&mut self, len: usize, df: bool) {
        let Some(addr) = self.remote_addr else {
            return;
        };
        if let Some(data) = self.datagram(&vec![0u8; len], df) {
            self.transmit.push_back(Transmit { addr, data, df });
        }
    }

    fn send_frag_test(&mut self) {
        self.stack_frag = false;
        self.send_zeros(packet::FRAG_TEST_LEN, false);
    }

    fn send_mtu_test(&mut self, now: Instant) {
        let s = &mut self.search;
        let wait = MTU_VERIFY_TIMEOUT * (1u32 << s.tests_sent.min(16));
        s.test_deadline = Some(now + wait);
        s.tests_sent += 1;
        let len = usize::from(s.candidate) + packet::ETHERNET_OVERHEAD;
        self.send_zeros(len, true);
    }

    /// Continue (or finish) the binary search after a verified or failed candidate.
    fn search_mtu(&mut self, now: Instant) {
        let s = &mut self.search;
        if u32::from(s.highest_good) + 1 >= u32::from(s.lowest_bad) {
            s.test_deadline = None;
            self.mtu = s.highest_good;
            self.verified = Some(s.highest_good);
            return;
        }
        s.candidate = ((u32::from(s.highest_good) + u32::from(s.lowest_bad)) / 2) as u16;
        s.tests_sent = 0;
        self.send_mtu_test(now);
    }

    /// A DF send to the peer failed with `EMSGSIZE`; `pmtu` is the kernel's path MTU for the
    /// peer (`IP_MTU` on the DF socket). Starts MTU verification from `pmtu − overheadDF`,
    /// unless a search already tested a candidate no larger than that.
    pub fn handle_emsgsize(&mut self, now: Instant, pmtu: u16) {
        let overhead = u16::try_from(self.overhead_df()).unwrap_or(u16::MAX);
        let candidate = pmtu.saturating_sub(overhead);
        if self.search.candidate != 0 && candidate >= self.search.candidate {
            return;
        }
        self.search = MtuSearch {
            candidate,
            highest_good: MTU_FLOOR,
            lowest_bad: candidate.saturating_add(1),
            tests_sent: 0,
            test_deadline: None,
        };
        self.max_payload = usize::from(pmtu).saturating_sub(packet::UDP_IP_OVERHEAD);
        self.mtu = candidate;
        self.verified = None;
        self.send_mtu_test(now);
    }

    /// Pack frames from the front of `frames` into one datagram for this link in `out`
    /// (cleared first; its capacity is reused), sealed with the DF or non-DF encryptor when
    /// encrypted. Limits: at most 100 frames, and the datagram within
    /// [`max_payload(df)`](Self::max_payload); a frame too big alone is dropped and counted.
    /// Returns how many frames were used up; send `out` (to [`remote_addr`](Self::remote_addr),
    /// on the DF path if `df`) when `packed > 0`, and call again for the rest.
    pub fn encode_frames(
        &mut self,
        df: bool,
        frames: &[OutFrame<'_>],
        out: &mut Vec<u8>,
    ) -> Result<Packed, EncodeError> {
        if self.remote_addr.is_none() {
            out.clear();
            return Err(EncodeError::AwaitingContact);
        }
        let limit = self.max_payload(df);
        let header = self.header_len();
        let packed = packet::pack_frames(out, header, limit, frames);
        if packed.packed == 0 {
            out.clear();
            return Ok(packed);
        }
        match &mut self.crypto {
            None => out[..header].copy_from_slice(&self.cfg.local.to_bytes()),
            Some(c) => {
                let enc = if df { &mut c.heartbeat } else { &mut c.plain };
                if let Err(e) = enc.seal_in_place(out) {
                    out.clear();
                    return Err(e.into());
                }
            }
        }
        Ok(packed)
    }

    /// A datagram from `from` whose sender name is this link's peer. Ethernet frames in it
    /// are ignored; see [`handle_datagram_frames`](Self::handle_datagram_frames).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Result<(), DropReason> {
        self.handle_datagram_frames(now, from, datagram, |_| {})
    }

    /// [`handle_datagram`](Self::handle_datagram), handing every Ethernet (non-special) frame
    /// to `on_frame`, with its src and dst peer names as they came, borrowed from `datagram`
    /// (decrypted in place). Frames before a malformed tail are delivered; the error is still
    /// returned. The caller checks that the names are known peers.
    pub fn handle_datagram_frames(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        mut on_frame: impl FnMut(Frame<'_>),
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
                None => on_frame(frame),
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
    ///
    /// * ConnectionEstablished (first time): established, slow heartbeats, a fragmentation
    ///   test now and every 5 min, and the 60000-byte DF frame that starts PMTU discovery.
    /// * FragmentationReceived: the host stack may fragment for us (`stack_frag`).
    /// * PMTUVerified(u16): the peer got the MTU test for the current candidate.
    pub fn handle_control(&mut self, now: Instant, tag: u8, data: &[u8]) {
        match tag {
            CONNECTION_ESTABLISHED if !self.established => {
                self.established = true;
                self.interval = self.cfg.heartbeat_interval;
                self.next_heartbeat = now + self.interval;
                self.events.push_back(LinkEvent::Established);
                self.send_frag_test();
                self.next_frag_test = Some(now + FRAG_TEST_INTERVAL);
                self.send_zeros(packet::PMTU_DISCOVERY_LEN, true);
            }
            FRAGMENTATION_RECEIVED => self.stack_frag = true,
            PMTU_VERIFIED => {
                let &[hi, lo, ..] = data else {
                    return;
                };
                let mtu = u16::from_be_bytes([hi, lo]);
                let s = &mut self.search;
                if s.test_deadline.is_some() && mtu == s.candidate {
                    s.highest_good = s.highest_good.max(mtu);
                    self.search_mtu(now);
                }
            }
            _ => {}
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
        if self.next_frag_test.is_some_and(|t| now >= t) {
            self.send_frag_test();
            self.next_frag_test = Some(now + FRAG_TEST_INTERVAL);
        }
        if self.search.test_deadline.is_some_and(|t| now >= t) {
            if self.search.tests_sent < MTU_VERIFY_ATTEMPTS {
                self.send_mtu_test(now);
            } else {
                self.search.lowest_bad = self.search.candidate;
                self.search_mtu(now);
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        let mut t = self.next_heartbeat.min(self.deadline);
        for x in [self.next_frag_test, self.search.test_deadline]
            .into_iter()
            .flatten()
        {
            t = t.min(x);
        }
        Some(t)
    }

    /// Whether datagrams or events are waiting to be polled.
    pub fn has_pending(&self) -> bool {
        !self.transmit.is_empty() || !self.events.is_empty()
    }

    /// The next datagram to send, with the path (DF or not) it must take.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    /// The next datagram as (address, bytes), whichever path it takes.
    fn tx(l: &mut HeartbeatLink) -> Option<(SocketAddr, Vec<u8>)> {
        l.poll_transmit().map(|t| (t.addr, t.data))
    }

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
        let (_, mut d) = tx(&mut a).expect("outbound side sends at once");
        assert!(
            tx(&mut b).is_none(),
            "inbound side waits to learn the address"
        );
        b.handle_datagram(now, a_addr, &mut d).unwrap();
        assert_eq!(b.remote_addr(), Some(a_addr));
        let (to, mut back) = tx(&mut b).expect("answered at once");
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
        let (_, d) = tx(&mut a).unwrap();
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
        let (_, mut other) = tx(&mut c).unwrap();
        assert_eq!(
            b.handle_datagram(now, a_addr, &mut other),
            Err(DropReason::Decrypt)
        );
    }

    #[test]
    fn answers_weave_mtu_and_frag_tests() {
        let (mut a, mut b, a_addr, _, now) = pair(None);
        let _ = tx(&mut a);
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

    /// Both sides established, transmit queues and events drained.
    fn established(key: Option<[u8; 32]>) -> (HeartbeatLink, HeartbeatLink, Instant) {
        let (mut a, mut b, a_addr, b_addr, now) = pair(key);
        let (_, mut d) = tx(&mut a).unwrap();
        b.handle_datagram(now, a_addr, &mut d).unwrap();
        let (_, mut back) = tx(&mut b).unwrap();
        a.handle_datagram(now, b_addr, &mut back).unwrap();
        a.handle_control(now, CONNECTION_ESTABLISHED, &[]);
        b.handle_control(now, CONNECTION_ESTABLISHED, &[]);
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        (a, b, now)
    }

    type Controls = Vec<(u8, Vec<u8>)>;

    /// Deliver everything `from` has queued to `to`; returns the control messages `to` wants
    /// to send back, and the (len, df) of each datagram.
    fn deliver(
        from: &mut HeartbeatLink,
        to: &mut HeartbeatLink,
        now: Instant,
    ) -> (Controls, Vec<(usize, bool)>) {
        let addr = "198.18.0.9:6783".parse().unwrap();
        let mut sent = Vec::new();
        while let Some(mut t) = from.poll_transmit() {
            sent.push((t.data.len(), t.df));
            to.handle_datagram(now, addr, &mut t.data).unwrap();
        }
        let mut ctl = Vec::new();
        while let Some(e) = to.poll_event() {
            if let LinkEvent::SendControl(tag, data) = e {
                ctl.push((tag, data));
            }
        }
        (ctl, sent)
    }

    /// The capture `a-2peer-plain`: on a 1500-byte underlay a clear link sends the 60001-byte
    /// fragmentation test (non-DF, UDP length 60021 − 8) and the 60000-byte DF probe; the
    /// probe's EMSGSIZE (PMTU 1500) gives candidate 1438, one 1452-byte MTU test (UDP payload
    /// 1472, DF), PMTUVerified 0x059e, and "Effective MTU verified at 1438".
    #[test]
    fn pmtu_discovery_as_in_the_capture() {
        let (mut a, mut b, now) = established(None);
        assert_eq!(a.mtu(), None);
        assert!(a.attrs().is_empty());
        assert_eq!(a.current_mtu(), DEFAULT_MTU);
        let t1 = a.poll_transmit().unwrap();
        assert_eq!((t1.data.len(), t1.df), (60_001 + 20, false));
        let t2 = a.poll_transmit().unwrap();
        assert_eq!((t2.data.len(), t2.df), (60_000 + 20, true));
        assert!(!a.stack_frag());
        // The kernel refuses the probe: EMSGSIZE, IP_MTU = 1500.
        a.handle_emsgsize(now, 1500);
        assert_eq!(a.current_mtu(), 1438);
        assert_eq!(a.max_payload(true), 1472);
        // The fragmentation test reaches b, then the MTU test.
        let mut frag = t1.data;
        let addr = "198.18.0.1:6783".parse().unwrap();
        b.handle_datagram(now, addr, &mut frag).unwrap();
        let (ctl, sent) = deliver(&mut a, &mut b, now);
        assert_eq!(sent, vec![(1472, true)]);
        assert_eq!(
            ctl,
            vec![
                (FRAGMENTATION_RECEIVED, vec![]),
                (PMTU_VERIFIED, vec![0x05, 0x9e])
            ]
        );
        for (tag, data) in ctl {
            a.handle_control(now, tag, &data);
        }
        assert!(a.stack_frag());
        assert_eq!(a.mtu(), Some(1438));
        assert_eq!(a.attrs(), vec![("mtu", "1438".to_string())]);
        // No MTU test outstanding any more; a later, larger PMTU report is ignored.
        assert_eq!(a.poll_timeout(), Some(now + SLOW_HEARTBEAT));
        a.handle_emsgsize(now, 9000);
        assert!(a.poll_transmit().is_none());
        // Encrypted, the same underlay gives 1414.
        let (mut c, _, now) = established(Some([1; 32]));
        while c.poll_transmit().is_some() {}
        c.handle_emsgsize(now, 1500);
        assert_eq!(c.current_mtu(), 1414);
        let t = c.poll_transmit().unwrap();
        assert_eq!((t.data.len(), t.df), (1472, true));
    }

    /// A peer that never answers: 8 tests per candidate at 10 ms << attempt, then binary
    /// search down to the 552 floor.
    #[test]
    fn silent_peer_drags_mtu_to_floor() {
        let (mut a, _b, now) = established(None);
        while a.poll_transmit().is_some() {}
        a.handle_emsgsize(now, 1500);
        let mut t = now;
        let mut waits = Vec::new();
        let mut tests = 0;
        while a.mtu().is_none() {
            while let Some(x) = a.poll_transmit() {
                if x.df && x.data.len() > 100 {
                    tests += 1;
                }
            }
            let next = a.poll_timeout().unwrap();
            if waits.len() < 9 {
                waits.push((next - t).as_millis());
            }
            t = next;
            a.handle_timeout(t);
        }
        assert_eq!(waits, vec![10, 20, 40, 80, 160, 320, 640, 1280, 10]);
        assert_eq!(a.mtu(), Some(MTU_FLOOR));
        // Candidates 1438, 995, 773, 662, 607, 579, 565, 558, 555, 553: 10 × 8 tests.
        assert_eq!(tests, 80);
    }

    /// A path that carries overlay MTUs up to 1400 only: the search settles on 1400.
    #[test]
    fn binary_search_finds_the_path_mtu() {
        let (mut a, mut b, now) = established(None);
        while a.poll_transmit().is_some() {}
        assert_eq!(a.known_good_mtu(), None, "no search yet");
        a.handle_emsgsize(now, 1500);
        assert_eq!(
            a.known_good_mtu(),
            Some(MTU_FLOOR),
            "only the floor is known at first"
        );
        let mut t = now;
        let addr = "198.18.0.1:6783".parse().unwrap();
        let mut good = MTU_FLOOR;
        for _ in 0..10_000 {
            if a.mtu().is_some() {
                break;
            }
            // What is known to work only grows, and never past what the path takes.
            let k = a.known_good_mtu().unwrap();
            assert!(k >= good && k <= 1400, "{k}");
            good = k;
            while let Some(mut x) = a.poll_transmit() {
                // The path drops datagrams carrying more than an overlay MTU of 1400
                // (UDP payload = MTU + 14 + 14 + 6).
                if x.data.len() <= 1400 + 34 {
                    b.handle_datagram(t, addr, &mut x.data).unwrap();
                }
            }
            let mut answered = false;
            while let Some(e) = b.poll_event() {
                if let LinkEvent::SendControl(tag, data) = e {
                    a.handle_control(t, tag, &data);
                    answered = true;
                }
            }
            if !answered {
                t = a.poll_timeout().unwrap();
                a.handle_timeout(t);
            }
        }
        assert_eq!(a.mtu(), Some(1400));
        assert_eq!(a.known_good_mtu(), Some(1400));
    }

    #[test]
    fn frag_test_every_five_minutes_resets_stack_frag() {
        let (mut a, _b, now) = established(None);
        while a.poll_transmit().is_some() {}
        a.deadline = now + 2 * FRAG_TEST_INTERVAL; // as if heartbeats kept coming
        a.handle_control(now, FRAGMENTATION_RECEIVED, &[]);
        assert!(a.stack_frag());
        a.handle_timeout(now + FRAG_TEST_INTERVAL);
        assert!(!a.stack_frag());
        let sent: Vec<_> = std::iter::from_fn(|| a.poll_transmit())
            .map(|t| (t.data.len(), t.df))
            .collect();
        assert!(sent.contains(&(60_021, false)));
    }

    fn frames_round_trip(key: Option<[u8; 32]>) {
        let (mut a, mut b, now) = established(key);
        while a.poll_transmit().is_some() {}
        let (s, d) = (a.cfg.local, a.cfg.remote);
        let bodies: Vec<Vec<u8>> = (0..250)
            .map(|i| vec![(i % 255 + 1) as u8; 60 + i % 40])
            .collect();
        let out: Vec<OutFrame> = bodies
            .iter()
            .map(|x| OutFrame {
                src: s,
                dst: d,
                data: x,
            })
            .collect();
        let addr = "198.18.0.1:6783".parse().unwrap();
        for df in [true, false] {
            let mut buf = Vec::new();
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut off = 0;
            let mut datagrams = 0;
            while off < out.len() {
                let p = a.encode_frames(df, &out[off..], &mut buf).unwrap();
                assert!(p.packed <= packet::MAX_FRAMES_PER_DATAGRAM);
                off += p.consumed;
                datagrams += 1;
                b.handle_datagram_frames(now, addr, &mut buf, |f| {
                    assert_eq!((f.src, f.dst), (s, d));
                    got.push(f.data.to_vec());
                })
                .unwrap();
            }
            assert_eq!(datagrams, 3, "250 frames → 100 + 100 + 50");
            assert_eq!(got, bodies);
        }
        // A frame over the DF limit is dropped, not sent.
        a.handle_emsgsize(now, 1500);
        let big = vec![9u8; 1500];
        let mut buf = Vec::new();
        let p = a
            .encode_frames(
                true,
                &[OutFrame {
                    src: s,
                    dst: d,
                    data: &big,
                }],
                &mut buf,
            )
            .unwrap();
        assert_eq!((p.consumed, p.packed, p.dropped), (1, 0, 1));
        assert!(buf.is_empty());
    }

    #[test]
    fn frames_round_trip_clear() {
        frames_round_trip(None);
    }

    #[test]
    fn frames_round_trip_encrypted_both_streams() {
        frames_round_trip(Some([5; 32]));
        // Vector S3-shaped: DF stream seq 0 carries bit 63.
        let (mut a, _b, _) = established(Some([5; 32]));
        let name = a.cfg.local;
        let mut buf = Vec::new();
        let f = [OutFrame {
            src: name,
            dst: name,
            data: &[1, 2, 3],
        }];
        a.encode_frames(false, &f, &mut buf).unwrap();
        assert_eq!(buf[6], 0x00);
        assert_eq!(buf.len(), SLEEVE_OVERHEAD + 14 + 3);
        a.encode_frames(true, &f, &mut buf).unwrap();
        assert_eq!(buf[6] & 0x80, 0x80);
    }

    #[test]
    fn awaiting_contact() {
        let (_, mut b, _, _, _) = pair(None);
        let mut buf = vec![1];
        assert_eq!(
            b.encode_frames(true, &[], &mut buf),
            Err(EncodeError::AwaitingContact)
        );
    }
}
