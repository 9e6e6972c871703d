//! The connection task against a peer that completes the handshake and then stops reading.

use super::*;
use tokio::io::DuplexStream;
use weft_crypto::Side;

fn ident(n: u64) -> LocalIdentity {
    LocalIdentity {
        name: PeerName::from_u64(n).unwrap(),
        uid: n,
        conn_id: 7,
    }
}

fn wire_config(n: u64, read_timeout: Duration) -> WireConfig {
    let id = ident(n);
    let mut c = WireConfig::new(id, Features::standard(&id, "t", 1, false, Some(SLEEVE)));
    c.read_timeout = read_timeout;
    c.heartbeat_interval = read_timeout / 2;
    c
}

struct Harness {
    /// The remote end: a `weft-wire` connection driven by hand over `sock`.
    peer: Connection,
    sock: DuplexStream,
    inputs: mpsc::Receiver<Input>,
    cmds: mpsc::Sender<Message>,
    close: Option<oneshot::Sender<String>>,
    permit_gate: HandshakeGate,
}

/// A conn task over a duplex pipe of `pipe` bytes, with the remote's handshake completed.
async fn start(pipe: usize, read_timeout: Duration, write_timeout: Duration) -> Harness {
    let (ours, sock) = tokio::io::duplex(pipe);
    let (tx, inputs) = mpsc::channel(64);
    let (cmds, cmd_rx) = mpsc::channel(CMD_QUEUE);
    let (close, close_rx) = oneshot::channel();
    let gate = HandshakeGate::new(4, 4);
    let permit = gate.try_admit(IpAddr::from([198, 18, 0, 3])).unwrap();
    tokio::spawn(conn_task(
        1,
        tokio::io::split(ours),
        false,
        wire_config(1, read_timeout),
        tx,
        ConnCtl {
            cmds: cmd_rx,
            close: close_rx,
            permit: Some(permit),
            write_timeout,
        },
    ));
    let peer = Connection::new(
        wire_config(2, Duration::from_secs(3600)),
        Side::Outbound,
        &mut rand::rngs::OsRng,
        Instant::now(),
    );
    let mut h = Harness {
        peer,
        sock,
        inputs,
        cmds,
        close: Some(close),
        permit_gate: gate,
    };
    // Handshake: the remote reads until it has the features, the task reports it.
    let mut buf = vec![0u8; 4096];
    while !h.peer.is_established() {
        if let Some(b) = h.peer.poll_transmit() {
            h.sock.write_all(&b).await.unwrap();
        }
        let n = tokio::time::timeout(Duration::from_secs(5), h.sock.read(&mut buf))
            .await
            .expect("the task sends its handshake")
            .unwrap();
        h.peer.handle_input(&buf[..n], Instant::now()).unwrap();
    }
    if let Some(b) = h.peer.poll_transmit() {
        h.sock.write_all(&b).await.unwrap();
    }
    match tokio::time::timeout(Duration::from_secs(5), h.inputs.recv()).await {
        Ok(Some(Input::Handshake { .. })) => {}
        _ => panic!("expected the handshake to be reported"),
    }
    assert_eq!(
        h.permit_gate.handshaking(),
        0,
        "permit returned at HandshakeDone"
    );
    h
}

/// Fill the pipe: messages the remote never reads, until the task stops taking them.
async fn stuff(h: &Harness, n: usize) -> usize {
    let msg = Message::SleeveCompat {
        tag: 1,
        payload: vec![0; 60 * 1024],
    };
    let mut sent = 0;
    for _ in 0..n {
        match h.cmds.try_send(msg.clone()) {
            Ok(()) => sent += 1,
            Err(_) => break,
        }
        tokio::task::yield_now().await;
    }
    sent
}

async fn closed(h: &mut Harness, within: Duration) -> (Option<String>, bool, Duration) {
    let t0 = Instant::now();
    loop {
        match tokio::time::timeout(within, h.inputs.recv()).await {
            Ok(Some(Input::Closed {
                io_error,
                write_stalled,
                error,
                ..
            })) => {
                let text = io_error.or(error.map(|e| e.to_string()));
                return (text, write_stalled, t0.elapsed());
            }
            Ok(Some(_)) => continue,
            Ok(None) => panic!("task gone without Closed"),
            Err(_) => panic!("the task did not close within {within:?}"),
        }
    }
}

#[tokio::test]
async fn read_timeout_fires_while_a_write_is_stuck() {
    // Write deadline far away: only the read timeout can end this.
    let mut h = start(4096, Duration::from_millis(600), Duration::from_secs(3600)).await;
    let taken = stuff(&h, 40).await;
    assert!(taken > 2, "some messages were queued ({taken})");
    let (why, stalled, after) = closed(&mut h, Duration::from_secs(5)).await;
    assert!(!stalled);
    assert!(
        why.as_deref().is_some_and(|w| w.contains("read timeout")),
        "{why:?}"
    );
    assert!(after < Duration::from_secs(2), "closed after {after:?}");
}

#[tokio::test]
async fn write_deadline_closes_a_peer_that_does_not_read() {
    // The remote keeps talking (heartbeats keep the read timeout away) but never reads.
    let mut h = start(4096, Duration::from_secs(3600), Duration::from_millis(500)).await;
    stuff(&h, 40).await;
    let hb = {
        h.peer.send(0, &[]).unwrap();
        h.peer.poll_transmit().unwrap()
    };
    let t0 = Instant::now();
    let result = loop {
        let _ = h.sock.write_all(&hb).await;
        match tokio::time::timeout(Duration::from_millis(100), h.inputs.recv()).await {
            Ok(Some(Input::Closed {
                io_error,
                write_stalled,
                ..
            })) => break (io_error, write_stalled),
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => panic!("task gone without Closed"),
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "no close");
    };
    assert!(result.1, "closed by the write deadline");
    assert!(
        result
            .0
            .as_deref()
            .is_some_and(|w| w.contains("not reading")),
        "{result:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn close_fires_while_a_write_is_stuck() {
    let mut h = start(4096, Duration::from_secs(3600), Duration::from_secs(3600)).await;
    stuff(&h, 40).await;
    h.close.take().unwrap().send("test says so".into()).unwrap();
    let (why, _, after) = closed(&mut h, Duration::from_secs(2)).await;
    assert_eq!(why.as_deref(), Some("test says so"));
    assert!(after < Duration::from_secs(1));
}

#[tokio::test]
async fn queue_is_bounded_when_the_peer_does_not_read() {
    // The task stops taking messages once OUT_BUDGET bytes wait; the bounded queue then fills
    // (the actor closes the connection on the first refused send).
    let h = start(4096, Duration::from_secs(3600), Duration::from_secs(3600)).await;
    let taken = stuff(&h, CMD_QUEUE + 100).await;
    assert!(taken < CMD_QUEUE + 100, "the queue refused messages");
    assert!(taken >= CMD_QUEUE, "{taken}");
    assert!(matches!(
        h.cmds.try_send(Message::Heartbeat),
        Err(TrySendError::Full(_))
    ));
}
