//! The mesh port's connections: the accept loop with its rate limit and handshake caps, and
//! one task per connection driving its `weft-wire` state machine (reads, bounded writes,
//! commands and timers in one `select!`).

use super::*;

/// Messages the actor may queue for one connection. A peer that does not read lets them pile
/// up (its task stops taking them while [`OUT_BUDGET`] bytes wait to be written); when the
/// queue is full the actor closes the connection instead of holding more.
pub(super) const CMD_QUEUE: usize = 1024;
/// A connection task takes more messages from its queue only while less than this waits to
/// be written to the socket.
const OUT_BUDGET: usize = 1 << 20;
/// A write that makes no progress for this long fails the connection: the peer has not taken
/// a byte for a whole TCP heartbeat interval (Weave has no write deadline after the
/// handshake, so a peer that stops reading held its connection, and its queue, forever).
pub(super) const WRITE_TIMEOUT: Duration = weft_wire::HEARTBEAT_INTERVAL;

/// What the actor can tell a connection task besides messages.
pub(super) struct ConnCtl {
    /// Messages to send (bounded, see [`CMD_QUEUE`]).
    pub(super) cmds: mpsc::Receiver<Message>,
    /// Close now, with this reason. Dropped sender: the actor forgot the connection.
    pub(super) close: oneshot::Receiver<String>,
    /// The connection's place under the inbound handshake caps, returned at `HandshakeDone`.
    pub(super) permit: Option<Permit>,
    pub(super) write_timeout: Duration,
}

/// The write half of a connection, which can be told to reset the connection when closed.
pub(super) trait WriteHalf: AsyncWrite + Unpin {
    /// Make closing discard what is unsent and reset the connection.
    fn reset_on_close(&self);
}

impl WriteHalf for tokio::net::tcp::OwnedWriteHalf {
    fn reset_on_close(&self) {
        reset_on_close(self.as_ref());
    }
}

impl<T: AsyncRead + AsyncWrite> WriteHalf for tokio::io::WriteHalf<T> {
    fn reset_on_close(&self) {}
}

/// `SO_LINGER` 0: closing the socket resets the connection and frees it at once, whatever
/// is unsent. Used for connections refused at accept, and for a connection closed with
/// output its peer never took (otherwise the kernel would keep trying to deliver it). With a
/// zero timeout the close does not block. (Weave sets it on every connection; weft does not,
/// so a peer still reads our last bytes, e.g. the features that tell it passwords differ.)
fn reset_on_close(stream: &TcpStream) {
    use nix::sys::socket::{setsockopt, sockopt};
    let off = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    if let Err(e) = setsockopt(stream, sockopt::Linger, &off) {
        debug!("SO_LINGER on a mesh connection: {e}");
    }
}

/// Accept connections, at most 20 at once and then one per 50 ms, as Weave does. A connection
/// over the handshake caps is closed at once (with a RST, so its descriptor is freed now) and
/// takes no token: a flood of stalled handshakes neither fills the descriptor table nor starves
/// real peers of accept tokens.
pub(super) async fn accept_loop(
    listener: TcpListener,
    tx: mpsc::Sender<Input>,
    gate: HandshakeGate,
) {
    const BURST: u32 = 20;
    const EVERY: Duration = Duration::from_millis(50);
    /// At most one log line about refused connections this often.
    const LOG_EVERY: Duration = Duration::from_secs(10);
    let mut tokens = BURST;
    let mut refilled = Instant::now();
    let mut last_log: Option<Instant> = None;
    let mut unlogged = 0u64;
    loop {
        // One token per 50 ms since the last refill, up to the burst.
        let earned = (refilled.elapsed().as_millis() / EVERY.as_millis()) as u32;
        if earned > 0 {
            tokens = (tokens + earned).min(BURST);
            refilled += EVERY * earned;
        }
        if tokens == 0 {
            tokio::time::sleep_until(tokio::time::Instant::from_std(refilled + EVERY)).await;
            continue;
        }
        match listener.accept().await {
            Ok((stream, addr)) => match gate.try_admit(addr.ip()) {
                Ok(permit) => {
                    tokens -= 1;
                    if tx
                        .send(Input::Accepted(stream, addr, permit))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(refusal) => {
                    reset_on_close(&stream);
                    drop(stream);
                    unlogged += 1;
                    if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                        last_log = Some(Instant::now());
                        let cap = match refusal {
                            handshake_gate::Refusal::Total => {
                                format!("{} connections in all", handshake_gate::MAX_TOTAL)
                            }
                            handshake_gate::Refusal::Source => format!(
                                "{} connections from {}",
                                handshake_gate::MAX_PER_SOURCE,
                                addr.ip()
                            ),
                        };
                        warn!(
                            "refused {unlogged} mesh connection(s) (the last from {addr}): \
                             {cap} are still in the handshake; see \
                             weft_connections_refused_total in /metrics"
                        );
                        unlogged = 0;
                    }
                }
            },
            Err(e) => {
                warn!("accepting a mesh connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// How long a connection the protocol closed may take to write what it queued last.
const FINAL_WRITE: Duration = Duration::from_secs(1);

/// One TCP connection: bytes in and out of its `weft-wire` state machine.
///
/// Reads, writes, the actor's commands and the connection's timers are branches of one
/// `select!`: a write the peer does not take never stops the read timeout, heartbeats or a
/// close from firing. What waits to be written is bounded: the task takes no more messages
/// while [`OUT_BUDGET`] bytes are pending (the actor's bounded queue then fills and the actor
/// closes the connection), and a write without progress for `write_timeout` fails it.
pub(super) async fn conn_task<R, W>(
    id: ConnId,
    (mut rd, mut wr): (R, W),
    outbound: bool,
    cfg: WireConfig,
    tx: mpsc::Sender<Input>,
    ctl: ConnCtl,
) where
    R: AsyncRead + Unpin,
    W: WriteHalf,
{
    let ConnCtl {
        mut cmds,
        mut close,
        mut permit,
        write_timeout,
    } = ctl;
    let side = weft_crypto::Side::from_outbound(outbound);
    let mut conn = Connection::new(cfg, side, &mut rand::rngs::OsRng, Instant::now());
    let mut buf = vec![0u8; 64 * 1024];
    // Bytes to write: `out[off..]`; since when the first of them has waited without progress.
    let mut out: Vec<u8> = Vec::new();
    let mut off = 0usize;
    let mut stalled_since: Option<Instant> = None;
    let mut io_error: Option<String> = None;
    let mut write_stalled = false;
    loop {
        if let Some(bytes) = conn.poll_transmit() {
            if off == out.len() {
                out = bytes;
            } else {
                out.drain(..off);
                out.extend_from_slice(&bytes);
            }
            off = 0;
        }
        if off == out.len() {
            stalled_since = None;
        } else if stalled_since.is_none() {
            stalled_since = Some(Instant::now());
        }
        while let Some(ev) = conn.poll_event() {
            let input = match ev {
                Event::HandshakeDone(remote) => {
                    // No longer counts against the inbound handshake caps.
                    permit = None;
                    Input::Handshake { conn: id, remote }
                }
                Event::Message(msg) => Input::Message { conn: id, msg },
                Event::UnknownTag { tag, len } => {
                    debug!(
                        "connection {id}: ignoring message with unknown tag {tag} ({len} bytes)"
                    );
                    continue;
                }
            };
            if tx.send(input).await.is_err() {
                return;
            }
        }
        if conn.is_closed() {
            // The protocol ended the connection (a failed handshake, say): what it queued
            // last, such as our features, still goes out, so the peer can tell why (a peer
            // that never reads them sees only EOF instead of "passwords differ").
            while let Some(bytes) = conn.poll_transmit() {
                out.extend_from_slice(&bytes);
            }
            if off < out.len()
                && matches!(
                    tokio::time::timeout(FINAL_WRITE, wr.write_all(&out[off..])).await,
                    Ok(Ok(()))
                )
            {
                off = out.len();
            }
            break;
        }
        let wake = conn
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let write_deadline = stalled_since.map(|t| t + write_timeout);
        let take_cmds = out.len() - off < OUT_BUDGET;
        tokio::select! {
            r = wr.write(&out[off..]), if off < out.len() => match r {
                Ok(0) => { io_error = Some("write: connection closed".into()); break; }
                Ok(n) => {
                    off += n;
                    stalled_since = None;
                    if off == out.len() {
                        out.clear();
                        off = 0;
                    }
                }
                Err(e) => { io_error = Some(format!("write: {e}")); break; }
            },
            _ = sleep_until(tokio::time::Instant::from_std(
                write_deadline.unwrap_or(wake)
            )), if write_deadline.is_some() => {
                write_stalled = true;
                io_error = Some(format!(
                    "peer is not reading: no write progress for {} s ({} bytes pending)",
                    write_timeout.as_secs(),
                    out.len() - off
                ));
                break;
            },
            r = rd.read(&mut buf) => match r {
                Ok(0) => { io_error = Some("EOF".into()); break; }
                Ok(n) => { let _ = conn.handle_input(&buf[..n], Instant::now()); }
                Err(e) => { io_error = Some(format!("read: {e}")); break; }
            },
            cmd = cmds.recv(), if take_cmds => match cmd {
                Some(msg) => {
                    if let Err(e) = conn.send_message(&msg) {
                        debug!("connection {id}: cannot send: {e}");
                    }
                }
                None => break,
            },
            why = &mut close => {
                let why = why.unwrap_or_else(|_| "the router let go of the connection".into());
                debug!("connection {id}: closing: {why}");
                conn.close();
                io_error = Some(why);
                break;
            },
            _ = sleep_until(tokio::time::Instant::from_std(wake)) => conn.handle_timeout(Instant::now()),
        }
    }
    drop(permit);
    if off < out.len() {
        // The peer did not take what we wrote: reset instead of a close that lingers.
        wr.reset_on_close();
    } else {
        let _ = tokio::time::timeout(Duration::from_millis(100), wr.shutdown()).await;
    }
    drop(wr);
    drop(rd);
    let error = conn.error().cloned();
    let _ = tx
        .send(Input::Closed {
            conn: id,
            error,
            io_error,
            write_stalled,
        })
        .await;
}
