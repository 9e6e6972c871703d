//! The connection state machine.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::{CryptoRng, RngCore};
use weft_crypto::{EphemeralKeyPair, SessionKey, Side, TcpOpener, TcpSealer, KEY_LEN, TAG_LEN};

use crate::envelope::{GossipEnvelope, UnicastEnvelope};
use crate::error::{ConnectionError, SendError};
pub use crate::features::RemotePeer;
use crate::features::{validate, Features, LocalIdentity};
use crate::frame::{FrameReader, Tag, MAX_HANDSHAKE_MESSAGE_LEN, MAX_MESSAGE_LEN};
use crate::header::{
    negotiate_version, ProtocolHeader, HEADER_LEN, PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION,
};
use crate::overlay::OverlayControlMsg;
use crate::password::Password;
use crate::{HANDSHAKE_TIMEOUT, HEADER_TIMEOUT, HEARTBEAT_INTERVAL, READ_TIMEOUT};

/// Crypto flag: no password.
const FLAG_PLAIN: u8 = 0;
/// Crypto flag: password; a 32-byte public key follows.
const FLAG_ENCRYPTED: u8 = 1;

/// Settings of one connection. Its `Debug` output hides the password.
#[derive(Clone)]
pub struct Config {
    /// Local identity, for self/collision detection and the connection UID.
    pub local: LocalIdentity,
    /// The features map to send (see [`Features::standard`]).
    pub features: Features,
    /// The mesh password; `None` for an unencrypted connection. Shared, not
    /// copied; the connection lets go of it once the session key exists.
    pub password: Option<Password>,
    /// Lowest protocol version offered (1 like Weave, or 2). Clamped to 1..=2.
    /// The connection refuses version 1 whatever this says; offering it only
    /// changes the header bytes.
    pub min_version: u8,
    /// Deadline for the header exchange.
    pub header_timeout: Duration,
    /// Deadline for the whole handshake, from the connection's creation
    /// (the header deadline is the earlier of the two).
    pub handshake_timeout: Duration,
    /// Interval between heartbeats sent.
    pub heartbeat_interval: Duration,
    /// Silence after which the connection fails.
    pub read_timeout: Duration,
    /// Largest message body accepted or sent.
    pub max_message_len: usize,
    /// Largest message accepted before the handshake is done (the features).
    pub max_handshake_message_len: usize,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("local", &self.local)
            .field("features", &self.features)
            .field("password", &self.password)
            .field("min_version", &self.min_version)
            .field("header_timeout", &self.header_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("read_timeout", &self.read_timeout)
            .field("max_message_len", &self.max_message_len)
            .field("max_handshake_message_len", &self.max_handshake_message_len)
            .finish()
    }
}

impl Config {
    /// Weave's defaults for `local` sending `features`, no password.
    pub fn new(local: LocalIdentity, features: Features) -> Config {
        Config {
            local,
            features,
            password: None,
            min_version: PROTOCOL_MIN_VERSION,
            header_timeout: HEADER_TIMEOUT,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            heartbeat_interval: HEARTBEAT_INTERVAL,
            read_timeout: READ_TIMEOUT,
            max_message_len: MAX_MESSAGE_LEN,
            max_handshake_message_len: MAX_HANDSHAKE_MESSAGE_LEN,
        }
    }

    /// Sets the password (builder style). Pass a [`Password`] to share one
    /// copy between connections.
    pub fn with_password(mut self, password: impl Into<Password>) -> Config {
        self.password = Some(password.into());
        self
    }
}

/// A message received (or to send) after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Tag 0.
    Heartbeat,
    /// Tags 1–3: compat-mode sleeve control (no overlay index).
    SleeveCompat {
        /// 1, 2 or 3.
        tag: u8,
        /// The payload (u16 BE MTU for tag 3).
        payload: Vec<u8>,
    },
    /// Tag 4.
    Gossip(GossipEnvelope),
    /// Tag 5.
    GossipUnicast(UnicastEnvelope),
    /// Tag 6.
    GossipBroadcast(GossipEnvelope),
    /// Tag 7.
    OverlayControl(OverlayControlMsg),
}

impl Message {
    /// The message's tag.
    pub fn tag(&self) -> u8 {
        match self {
            Message::Heartbeat => Tag::Heartbeat.as_u8(),
            Message::SleeveCompat { tag, .. } => *tag,
            Message::Gossip(_) => Tag::Gossip.as_u8(),
            Message::GossipUnicast(_) => Tag::GossipUnicast.as_u8(),
            Message::GossipBroadcast(_) => Tag::GossipBroadcast.as_u8(),
            Message::OverlayControl(_) => Tag::OverlayControl.as_u8(),
        }
    }

    /// The payload after the tag byte.
    pub fn encode_payload(&self) -> Vec<u8> {
        match self {
            Message::Heartbeat => Vec::new(),
            Message::SleeveCompat { payload, .. } => payload.clone(),
            Message::Gossip(e) | Message::GossipBroadcast(e) => e.encode(),
            Message::GossipUnicast(e) => e.encode(),
            Message::OverlayControl(m) => m.encode(),
        }
    }

    /// Decodes the payload of a message with tag `tag`. `Ok(None)` for an
    /// unknown tag (which Weave logs and ignores).
    pub fn decode(tag: u8, payload: &[u8]) -> Result<Option<Message>, ConnectionError> {
        let envelope_err = |error| ConnectionError::Envelope { tag, error };
        let Some(known) = Tag::from_u8(tag) else {
            return Ok(None);
        };
        Ok(Some(match known {
            Tag::Heartbeat => Message::Heartbeat,
            Tag::Reserved1 | Tag::Reserved2 | Tag::Reserved3 => Message::SleeveCompat {
                tag,
                payload: payload.to_vec(),
            },
            Tag::Gossip => Message::Gossip(GossipEnvelope::decode(payload).map_err(envelope_err)?),
            Tag::GossipUnicast => {
                Message::GossipUnicast(UnicastEnvelope::decode(payload).map_err(envelope_err)?)
            }
            Tag::GossipBroadcast => {
                Message::GossipBroadcast(GossipEnvelope::decode(payload).map_err(envelope_err)?)
            }
            Tag::OverlayControl => Message::OverlayControl(
                OverlayControlMsg::decode(payload)
                    .ok_or(ConnectionError::OverlayControlTooShort(payload.len()))?,
            ),
        }))
    }
}

/// What the connection reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake is complete and the remote's features are valid. The
    /// caller decides whether to keep the connection (known peer, duplicate
    /// connection, connection limit) and calls
    /// [`Connection::close`] if not. Heartbeats start now.
    HandshakeDone(Box<RemotePeer>),
    /// A message arrived.
    Message(Message),
    /// A message with a tag outside 0–7 arrived; Weave ignores these.
    UnknownTag {
        /// The tag byte.
        tag: u8,
        /// Payload length.
        len: usize,
    },
}

/// Where the handshake (or the connection) is.
#[derive(Debug)]
enum State {
    /// Reading the peer's 7-byte header.
    Header { buf: [u8; HEADER_LEN], have: usize },
    /// Reading the peer's crypto flag.
    CryptoFlag,
    /// Reading the peer's public key.
    PublicKey { buf: [u8; KEY_LEN], have: usize },
    /// Reading the features message.
    Features,
    /// Handshake done.
    Established,
    /// Failed or closed.
    Closed,
}

/// One end of a mesh TCP connection, without I/O. See the [crate] docs.
#[derive(Debug)]
pub struct Connection {
    config: Config,
    side: Side,
    state: State,
    /// Our ephemeral key pair, until the session key is derived (then dropped,
    /// which zeroizes the secret).
    key_pair: Option<EphemeralKeyPair>,
    /// Our ephemeral public key (sent in the handshake; not secret).
    our_public: Option<[u8; KEY_LEN]>,
    /// The connection uses a password (kept after the password is let go).
    encrypted: bool,
    session_key: Option<SessionKey>,
    sealer: Option<TcpSealer>,
    opener: Option<TcpOpener>,
    reader: FrameReader,
    tx: Vec<u8>,
    events: VecDeque<Event>,
    /// Header, handshake or read deadline, depending on the state.
    deadline: Option<Instant>,
    /// End of the handshake budget.
    handshake_deadline: Instant,
    next_heartbeat: Option<Instant>,
    version: Option<u8>,
    remote: Option<RemotePeer>,
    error: Option<ConnectionError>,
}

impl Connection {
    /// A connection drawing its ephemeral key pair (when a password is set)
    /// from `rng`. `side` is [`Side::Outbound`] for the dialling end. The
    /// header is queued for sending at once.
    pub fn new<R: RngCore + CryptoRng>(
        config: Config,
        side: Side,
        rng: &mut R,
        now: Instant,
    ) -> Connection {
        let key_pair = config
            .password
            .as_ref()
            .map(|_| EphemeralKeyPair::generate(rng));
        Connection::build(config, side, key_pair, now)
    }

    /// A connection using the given key pair (for tests and vectors). The
    /// key pair is used only if the config has a password.
    pub fn with_key_pair(
        config: Config,
        side: Side,
        key_pair: EphemeralKeyPair,
        now: Instant,
    ) -> Connection {
        Connection::build(config, side, Some(key_pair), now)
    }

    /// Fuzzing only (compiled under `--cfg fuzzing`, which cargo-fuzz sets): the state a
    /// finished handshake leaves, built from a session key computed once by the fuzz target,
    /// so a target that fuzzes what comes after the handshake does not pay for X25519 on
    /// every input. As after a real handshake, message #0 (the features) is already sealed
    /// and opened in each direction when `session_key` is given.
    #[cfg(fuzzing)]
    #[doc(hidden)]
    pub fn established_for_fuzzing(
        mut config: Config,
        side: Side,
        remote: crate::features::RemotePeer,
        session_key: Option<SessionKey>,
        now: Instant,
    ) -> Connection {
        config.password = None;
        let mut conn = Connection::build(config, side, None, now);
        conn.tx.clear();
        if let Some(key) = session_key {
            let mut sealer = TcpSealer::new(&key, side);
            let mut opener = TcpOpener::new(&key, side);
            let mut ours = [0u8; TAG_LEN];
            let mut theirs = [0u8; TAG_LEN];
            let peer_ok = TcpSealer::new(&key, side.peer())
                .seal_into(&[], &mut theirs)
                .is_ok();
            if sealer.seal_into(&[], &mut ours).is_ok() && peer_ok {
                let _ = opener.open_in_place(&mut theirs);
            }
            conn.sealer = Some(sealer);
            conn.opener = Some(opener);
            conn.session_key = Some(key);
            conn.encrypted = true;
        }
        conn.state = State::Established;
        conn.version = Some(PROTOCOL_MAX_VERSION);
        conn.reader.set_max_len(conn.config.max_message_len);
        conn.deadline = Some(now + conn.config.read_timeout);
        conn.next_heartbeat = Some(now + conn.config.heartbeat_interval);
        conn.remote = Some(remote);
        conn
    }

    fn build(
        mut config: Config,
        side: Side,
        key_pair: Option<EphemeralKeyPair>,
        now: Instant,
    ) -> Connection {
        config.min_version = config
            .min_version
            .clamp(PROTOCOL_MIN_VERSION, PROTOCOL_MAX_VERSION);
        let encrypted = config.password.is_some();
        // Without a password the key pair is never used: do not keep it.
        let key_pair = key_pair.filter(|_| encrypted);
        let our_public = key_pair.as_ref().map(EphemeralKeyPair::public_key);
        let handshake_deadline = now + config.handshake_timeout;
        let pre_auth_max = config.max_handshake_message_len.min(config.max_message_len);
        let mut conn = Connection {
            reader: FrameReader::new(pre_auth_max),
            deadline: Some((now + config.header_timeout).min(handshake_deadline)),
            handshake_deadline,
            our_public,
            encrypted,
            config,
            side,
            state: State::Header {
                buf: [0; HEADER_LEN],
                have: 0,
            },
            key_pair,
            session_key: None,
            sealer: None,
            opener: None,
            tx: Vec::new(),
            events: VecDeque::new(),
            next_heartbeat: None,
            version: None,
            remote: None,
            error: None,
        };
        let header = conn.our_header().encode();
        conn.tx.extend_from_slice(&header);
        conn
    }

    fn our_header(&self) -> ProtocolHeader {
        ProtocolHeader {
            min_version: self.config.min_version,
            max_version: PROTOCOL_MAX_VERSION,
        }
    }

    /// Which end of the connection this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// True once the handshake is complete (and until the connection fails).
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established)
    }

    /// True once the connection failed or was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Why the connection closed.
    pub fn error(&self) -> Option<&ConnectionError> {
        self.error.as_ref()
    }

    /// The negotiated protocol version, once the headers are exchanged.
    pub fn version(&self) -> Option<u8> {
        self.version
    }

    /// The remote peer, once the handshake is done.
    pub fn remote(&self) -> Option<&RemotePeer> {
        self.remote.as_ref()
    }

    /// The session key, once the public keys are exchanged (encrypted
    /// connections only).
    pub fn session_key(&self) -> Option<&SessionKey> {
        self.session_key.as_ref()
    }

    /// Our ephemeral public key, if a password is set.
    pub fn public_key(&self) -> Option<[u8; KEY_LEN]> {
        self.our_public
    }

    /// Whether the connection still holds its ephemeral key pair: only while
    /// the public keys are being exchanged. It is dropped (the secret
    /// zeroized) once the session key is derived or the connection fails.
    pub fn holds_key_pair(&self) -> bool {
        self.key_pair.is_some()
    }

    /// Whether the connection still references the password: only until the
    /// session key is derived (or the connection fails).
    pub fn holds_password(&self) -> bool {
        self.config.password.is_some()
    }

    /// Bytes of a partially received message held in the receive buffer.
    pub fn buffered_input(&self) -> usize {
        self.reader.buffered()
    }

    /// Takes everything queued for sending (all messages since the last
    /// call, batched), or `None` if nothing is queued.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.tx.is_empty()).then(|| std::mem::take(&mut self.tx))
    }

    /// Bytes queued for sending.
    pub fn pending_transmit(&self) -> usize {
        self.tx.len()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        match (self.deadline, self.next_heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires due timers: fails the connection if a deadline passed, queues a
    /// heartbeat if one is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        if self.deadline.is_some_and(|d| now >= d) {
            let err = match self.state {
                State::Header { .. } => ConnectionError::HeaderTimeout,
                State::Established => ConnectionError::ReadTimeout,
                _ => ConnectionError::HandshakeTimeout,
            };
            self.fail(err);
            return;
        }
        if let Some(due) = self.next_heartbeat {
            if now >= due {
                let mut next = due + self.config.heartbeat_interval;
                if next <= now {
                    next = now + self.config.heartbeat_interval;
                }
                self.next_heartbeat = Some(next);
                if let Err(e) = self.write_message(Tag::Heartbeat.as_u8(), &[]) {
                    self.fail(e);
                }
            }
        }
    }

    /// Closes the connection locally (e.g. the mesh refused the remote).
    /// Pending output is discarded; later input is ignored.
    pub fn close(&mut self) {
        if !self.is_closed() {
            self.tx.clear();
            self.fail(ConnectionError::Closed);
        }
    }

    fn fail(&mut self, err: ConnectionError) {
        self.key_pair = None;
        self.config.password = None;
        self.state = State::Closed;
        self.deadline = None;
        self.next_heartbeat = None;
        self.error = Some(err);
    }

    /// Feeds bytes received from the peer. Complete messages become events;
    /// a partial message is buffered (at most one message). On error the
    /// connection is closed and the error returned (events decoded before the
    /// error stay queued).
    pub fn handle_input(&mut self, data: &[u8], now: Instant) -> Result<(), ConnectionError> {
        if self.is_closed() {
            return Err(self.error.clone().unwrap_or(ConnectionError::Closed));
        }
        if !data.is_empty() && self.is_established() {
            self.deadline = Some(now + self.config.read_timeout);
        }
        let mut input = data;
        while !input.is_empty() {
            if let Err(e) = self.step(&mut input, now) {
                self.fail(e.clone());
                return Err(e);
            }
        }
        Ok(())
    }

    /// Consumes some of `input`, advancing the state machine.
    fn step(&mut self, input: &mut &[u8], now: Instant) -> Result<(), ConnectionError> {
        match &mut self.state {
            State::Header { buf, have } => {
                if !fill(buf, have, input) {
                    return Ok(());
                }
                let theirs = ProtocolHeader::decode(buf)?;
                self.on_header(theirs)
            }
            State::CryptoFlag => {
                let Some((&flag, rest)) = input.split_first() else {
                    return Ok(());
                };
                *input = rest;
                match (flag, self.encrypted) {
                    (FLAG_PLAIN, false) => {
                        self.state = State::Features;
                        self.send_features()
                    }
                    (FLAG_ENCRYPTED, true) => {
                        self.state = State::PublicKey {
                            buf: [0; KEY_LEN],
                            have: 0,
                        };
                        Ok(())
                    }
                    (FLAG_PLAIN, true) => Err(ConnectionError::PeerUnencrypted),
                    (FLAG_ENCRYPTED, false) => Err(ConnectionError::PeerEncrypted),
                    (other, _) => Err(ConnectionError::InvalidCryptoFlag(other)),
                }
            }
            State::PublicKey { buf, have } => {
                if !fill(buf, have, input) {
                    return Ok(());
                }
                let their_public = *buf;
                self.on_public_key(&their_public)
            }
            State::Features => match self.reader.read(input) {
                Ok(None) => Ok(()),
                Ok(Some(body)) => self.on_features(body, now),
                Err(ConnectionError::MessageTooLarge { len, max }) => {
                    Err(ConnectionError::HandshakeMessageTooLarge { len, max })
                }
                Err(e) => Err(e),
            },
            State::Established => match self.reader.read(input)? {
                None => Ok(()),
                Some(body) => self.on_message(body),
            },
            State::Closed => {
                *input = &[];
                Ok(())
            }
        }
    }

    fn on_header(&mut self, theirs: ProtocolHeader) -> Result<(), ConnectionError> {
        let ours = self.our_header();
        let version = negotiate_version(ours, theirs).ok_or(ConnectionError::VersionMismatch {
            our_min: ours.min_version,
            our_max: ours.max_version,
            their_min: theirs.min_version,
            their_max: theirs.max_version,
        })?;
        if version < 2 {
            return Err(ConnectionError::Version1Unsupported);
        }
        self.version = Some(version);
        self.deadline = Some(self.handshake_deadline);
        self.state = State::CryptoFlag;
        match self.public_key() {
            Some(public) => {
                self.tx.push(FLAG_ENCRYPTED);
                self.tx.extend_from_slice(&public);
            }
            None => self.tx.push(FLAG_PLAIN),
        }
        Ok(())
    }

    fn on_public_key(&mut self, their_public: &[u8; KEY_LEN]) -> Result<(), ConnectionError> {
        // Both are needed only for this: let go of them whatever the outcome
        // (dropping the key pair zeroizes its secret).
        let (Some(key_pair), Some(password)) = (self.key_pair.take(), self.config.password.take())
        else {
            // Unreachable: PublicKey is entered only with a password, and a
            // key pair always exists then.
            return Err(ConnectionError::PeerEncrypted);
        };
        let key = key_pair
            .session_key(their_public, password.as_bytes())
            .map_err(ConnectionError::KeyExchange)?;
        drop(key_pair);
        drop(password);
        self.sealer = Some(TcpSealer::new(&key, self.side));
        self.opener = Some(TcpOpener::new(&key, self.side));
        self.session_key = Some(key);
        self.state = State::Features;
        self.send_features()
    }

    fn send_features(&mut self) -> Result<(), ConnectionError> {
        let body = self.config.features.encode();
        self.write_frame(None, &body).map_err(|e| match e {
            SendError::Seal(c) => ConnectionError::Seal(c),
            // Our own features exceeding 10 MiB: refuse rather than send.
            _ => ConnectionError::Closed,
        })
    }

    fn on_features(&mut self, mut body: Vec<u8>, now: Instant) -> Result<(), ConnectionError> {
        let plaintext: &[u8] = match &mut self.opener {
            Some(opener) => opener
                .open_in_place(&mut body)
                .map_err(|_| ConnectionError::PasswordMismatch)?,
            None => &body,
        };
        let features = Features::decode(plaintext).map_err(ConnectionError::FeaturesDecode)?;
        let version = self.version.unwrap_or(PROTOCOL_MAX_VERSION);
        let remote = validate(
            features,
            &self.config.local,
            version,
            self.session_key.clone(),
        )?;
        self.state = State::Established;
        self.reader.set_max_len(self.config.max_message_len);
        self.deadline = Some(now + self.config.read_timeout);
        self.next_heartbeat = Some(now + self.config.heartbeat_interval);
        self.remote = Some(remote.clone());
        self.events
            .push_back(Event::HandshakeDone(Box::new(remote)));
        Ok(())
    }

    fn on_message(&mut self, mut body: Vec<u8>) -> Result<(), ConnectionError> {
        let plaintext: &[u8] = match &mut self.opener {
            Some(opener) => opener
                .open_in_place(&mut body)
                .map_err(ConnectionError::Decrypt)?,
            None => &body,
        };
        let Some((&tag, payload)) = plaintext.split_first() else {
            return Ok(()); // an empty message is ignored
        };
        let event = match Message::decode(tag, payload)? {
            Some(msg) => Event::Message(msg),
            None => Event::UnknownTag {
                tag,
                len: payload.len(),
            },
        };
        self.events.push_back(event);
        Ok(())
    }

    /// Queues a message with `tag` and `payload` (batched with other queued
    /// output). Refuses tag-7 payloads shorter than 2 bytes, which would
    /// crash a Weave receiver.
    pub fn send(&mut self, tag: u8, payload: &[u8]) -> Result<(), SendError> {
        match self.state {
            State::Established => {}
            State::Closed => return Err(SendError::Closed),
            _ => return Err(SendError::NotEstablished),
        }
        if tag == Tag::OverlayControl.as_u8() && payload.len() < 2 {
            return Err(SendError::MalformedOverlayControl);
        }
        self.write_message(tag, payload).map_err(|e| match e {
            ConnectionError::Seal(c) => {
                self.fail(ConnectionError::Seal(c));
                SendError::Seal(c)
            }
            ConnectionError::MessageTooLarge { len, max } => SendError::TooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max,
            },
            _ => SendError::Closed,
        })
    }

    /// Queues a typed message.
    pub fn send_message(&mut self, message: &Message) -> Result<(), SendError> {
        self.send(message.tag(), &message.encode_payload())
    }

    fn write_message(&mut self, tag: u8, payload: &[u8]) -> Result<(), ConnectionError> {
        self.write_frame(Some(tag), payload).map_err(|e| match e {
            SendError::Seal(c) => ConnectionError::Seal(c),
            SendError::TooLarge { len, max } => ConnectionError::MessageTooLarge {
                len: u32::try_from(len).unwrap_or(u32::MAX),
                max,
            },
            _ => ConnectionError::Closed,
        })
    }

    /// Appends `len ‖ body` where body = `[tag] ‖ payload`, sealed when the
    /// connection is encrypted.
    fn write_frame(&mut self, tag: Option<u8>, payload: &[u8]) -> Result<(), SendError> {
        let overhead = if self.sealer.is_some() { TAG_LEN } else { 0 };
        let len = overhead + usize::from(tag.is_some()) + payload.len();
        let max = self.config.max_message_len;
        let prefix = u32::try_from(len)
            .ok()
            .filter(|_| len <= max)
            .ok_or(SendError::TooLarge { len, max })?;
        let start = self.tx.len();
        self.tx.reserve(4 + len);
        self.tx.extend_from_slice(&prefix.to_be_bytes());
        let body_start = self.tx.len();
        self.tx.resize(body_start + overhead, 0);
        self.tx.extend(tag);
        self.tx.extend_from_slice(payload);
        if let Some(sealer) = &mut self.sealer {
            let sealed = match self.tx.get_mut(body_start..) {
                Some(body) => sealer.seal_in_place(body),
                None => Ok(()),
            };
            if let Err(e) = sealed {
                self.tx.truncate(start);
                return Err(SendError::Seal(e));
            }
        }
        Ok(())
    }
}

/// Copies from `input` into `buf[*have..]`; true when `buf` is full.
fn fill<const N: usize>(buf: &mut [u8; N], have: &mut usize, input: &mut &[u8]) -> bool {
    let take = (N - *have).min(input.len());
    let (now, rest) = input.split_at(take);
    if let Some(dst) = buf.get_mut(*have..*have + take) {
        dst.copy_from_slice(now);
    }
    *have += take;
    *input = rest;
    *have == N
}

#[cfg(test)]
mod tests;
