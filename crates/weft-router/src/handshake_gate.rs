//! Caps on inbound mesh connections that have not finished the handshake.
//!
//! Every accepted connection must take a [`Permit`] before it gets a task; the permit is held
//! until the handshake completes (or the connection ends) and then returned. A connection over
//! a cap is closed at once, so a client that opens connections and never finishes the
//! handshake holds at most [`MAX_PER_SOURCE`] descriptors (at most [`MAX_TOTAL`] for all
//! sources together), each for at most the handshake deadline (10 s). Connections we dial are
//! not counted: the connection maker bounds those.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Inbound connections still in the handshake, all sources together.
pub const MAX_TOTAL: usize = 64;
/// Inbound connections still in the handshake from one source address. Weave peers behind
/// one NAT address rarely handshake more than a few at once, and a peer retries anyway.
pub const MAX_PER_SOURCE: usize = 8;

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// [`MAX_TOTAL`] connections are handshaking.
    Total,
    /// [`MAX_PER_SOURCE`] connections from this address are handshaking.
    Source,
}

impl Refusal {
    /// The `reason` label of `weft_connections_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Total => "handshake_cap",
            Refusal::Source => "handshake_cap_per_source",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Inner {
    max_total: usize,
    max_per_source: usize,
    counts: Mutex<Counts>,
    refused_total: AtomicU64,
    refused_source: AtomicU64,
}

/// The shared caps (cheap to clone).
#[derive(Debug, Clone)]
pub struct HandshakeGate(Arc<Inner>);

impl Default for HandshakeGate {
    fn default() -> Self {
        HandshakeGate::new(MAX_TOTAL, MAX_PER_SOURCE)
    }
}

impl HandshakeGate {
    pub fn new(max_total: usize, max_per_source: usize) -> HandshakeGate {
        HandshakeGate(Arc::new(Inner {
            max_total,
            max_per_source,
            counts: Mutex::new(Counts::default()),
            refused_total: AtomicU64::new(0),
            refused_source: AtomicU64::new(0),
        }))
    }

    /// A permit for a connection from `source`, or which cap refuses it (counted).
    pub fn try_admit(&self, source: IpAddr) -> Result<Permit, Refusal> {
        let mut c = self.0.counts.lock().unwrap_or_else(|p| p.into_inner());
        let refusal = if c.total >= self.0.max_total {
            Some((Refusal::Total, &self.0.refused_total))
        } else if c.per_source.get(&source).copied().unwrap_or(0) >= self.0.max_per_source {
            Some((Refusal::Source, &self.0.refused_source))
        } else {
            None
        };
        if let Some((r, counter)) = refusal {
            counter.fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        c.total += 1;
        *c.per_source.entry(source).or_default() += 1;
        Ok(Permit {
            gate: self.clone(),
            source,
        })
    }

    /// Connections handshaking now.
    pub fn handshaking(&self) -> usize {
        self.0
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .total
    }

    /// Connections refused so far, by reason label.
    pub fn refused(&self) -> [(&'static str, u64); 2] {
        [
            (
                Refusal::Total.label(),
                self.0.refused_total.load(Ordering::Relaxed),
            ),
            (
                Refusal::Source.label(),
                self.0.refused_source.load(Ordering::Relaxed),
            ),
        ]
    }

    fn release(&self, source: IpAddr) {
        let mut c = self.0.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_source.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_source.remove(&source);
            }
        }
    }
}

/// One admitted connection's place under the caps; dropping it frees the place.
#[derive(Debug)]
pub struct Permit {
    gate: HandshakeGate,
    source: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release(self.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 18, 0, last])
    }

    #[test]
    fn per_source_then_total_caps_and_release() {
        let gate = HandshakeGate::new(5, 2);
        let a1 = gate.try_admit(ip(3)).unwrap();
        let _a2 = gate.try_admit(ip(3)).unwrap();
        assert_eq!(gate.try_admit(ip(3)).unwrap_err(), Refusal::Source);
        // Other sources still get in, up to the total.
        let others: Vec<Permit> = (4..7).map(|i| gate.try_admit(ip(i)).unwrap()).collect();
        assert_eq!(gate.handshaking(), 5);
        assert_eq!(gate.try_admit(ip(9)).unwrap_err(), Refusal::Total);
        assert_eq!(
            gate.refused(),
            [("handshake_cap", 1), ("handshake_cap_per_source", 1)]
        );
        // A finished handshake frees its place for its source.
        drop(a1);
        let _a3 = gate.try_admit(ip(3)).unwrap();
        drop(others);
        assert_eq!(gate.handshaking(), 2);
        assert_eq!(gate.0.counts.lock().unwrap().per_source.len(), 1);
    }
}
