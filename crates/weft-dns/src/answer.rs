//! The weaveDNS responder as a pure function (reference weave-services.md §4.4; capture (e)
//! of the conformance README, "DNS answers" and "Further DNS facts").
//!
//! [`answer`] takes the bytes of one query, the transport it came on, the record store and
//! the configuration, and decides: a [`Decision::Reply`] with the bytes to send, a
//! [`Decision::Forward`] (the edge relays the query upstream), or a [`Decision::Drop`].
//!
//! * Zones (longest match, as Weave's `dns.ServeMux`): names in the domain go to the local
//!   handler; names under `in-addr.arpa.` to the reverse handler; anything else is forwarded,
//!   except single-label names (`web.`), answered locally as `web.<domain>`.
//! * Local: no live entry → NXDOMAIN (no AA); the name exists but the type is not A →
//!   NOERROR with no answer (RFC 4074); else one A per live address, shuffled, AA set.
//! * Reverse: not PTR or not an IPv4 name → NXDOMAIN; a live entry with the address → PTR
//!   with its hostname as registered (the first in storage order); none → forwarded.
//! * Wire habits of Weave (miekg/dns `SetReply`): the reply carries the query's ID, opcode,
//!   RD and CD and its question exactly as spelled; RA always set; AD never; no OPT record
//!   (ARCOUNT 0); owner names repeat the question's spelling; TTL from the configuration;
//!   **no name compression**.
//! * Size: over UDP at most 512 bytes, or the query's EDNS0 UDP size when larger (RFC 6891
//!   treats smaller values as 512); the largest prefix of the shuffled answers that fits is
//!   sent with TC set. Over TCP there is no limit.
//! * Bad input: fewer than 12 bytes, or a message with QR set (a response: answering it could
//!   loop), is dropped; a header with anything wrong after it (unparsable body, not exactly
//!   one question) gets FORMERR; an opcode other than QUERY gets NOTIMP.
//!
//! Parsing uses hickory-proto (bounded, pointer-loop safe); replies are written here, since
//! Weave's replies are uncompressed and hickory's encoder always compresses.

use std::net::Ipv4Addr;

use hickory_proto::op::{Header, Message, MessageType, OpCode};
use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::records::Records;

/// DNS header length.
const HEADER_LEN: usize = 12;
/// The UDP size limit without EDNS0 (RFC 1035).
pub const MIN_UDP_SIZE: usize = 512;
/// Weave's default record TTL (`--dns-ttl`).
pub const DEFAULT_TTL: u32 = 1;
/// Weave's default domain (`--dns-domain`).
pub const DEFAULT_DOMAIN: &str = "weave.local.";

const RCODE_NOERROR: u8 = 0;
const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;
const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const CLASS_IN: u16 = 1;

/// How the query arrived: it bounds the reply's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Limit 512 or the query's EDNS0 UDP size; truncated with TC when larger.
    Udp,
    /// No limit (the edge adds the two-byte length prefix).
    Tcp,
}

/// The responder's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerConfig {
    /// The local domain as labels, lowercase (`["weave", "local"]` for `weave.local.`).
    domain: Vec<Vec<u8>>,
    /// TTL of every local record, in seconds.
    pub ttl: u32,
}

impl AnswerConfig {
    /// The configuration for `domain` (case and a final dot do not matter) and `ttl`.
    pub fn new(domain: &str, ttl: u32) -> AnswerConfig {
        let domain = domain
            .split('.')
            .filter(|l| !l.is_empty())
            .map(|l| l.to_ascii_lowercase().into_bytes())
            .collect();
        AnswerConfig { domain, ttl }
    }

    /// The domain as a fully qualified lowercase name (`weave.local.`).
    pub fn domain(&self) -> String {
        let mut s = String::new();
        for l in &self.domain {
            s.push_str(&String::from_utf8_lossy(l));
            s.push('.');
        }
        if s.is_empty() {
            s.push('.');
        }
        s
    }
}

impl Default for AnswerConfig {
    fn default() -> AnswerConfig {
        AnswerConfig::new(DEFAULT_DOMAIN, DEFAULT_TTL)
    }
}

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send these bytes back (a local answer or an error).
    Reply(Vec<u8>),
    /// Not ours: relay the query to the upstream resolvers.
    Forward,
    /// Garbage without a usable header, or a response: send nothing.
    Drop,
}

/// One record of the answer section, before encoding.
enum Rdata {
    A(Ipv4Addr),
    Ptr(Vec<Vec<u8>>),
}

/// The parts of a query a reply is built from.
struct Query {
    header: Header,
    /// The question's name, labels as spelled.
    labels: Vec<Vec<u8>>,
    qtype: u16,
    qclass: u16,
    /// The EDNS0 UDP size, if the query had an OPT record.
    edns_size: Option<u16>,
}

/// Decides what to answer to `query` (see the module documentation). `rng` gives the random
/// numbers of the shuffle.
pub fn answer(
    query: &[u8],
    transport: Transport,
    records: &Records,
    cfg: &AnswerConfig,
    rng: &mut impl FnMut() -> u64,
) -> Decision {
    let header = match query
        .get(..HEADER_LEN)
        .and_then(|h| Header::read(&mut BinDecoder::new(h)).ok())
    {
        Some(h) => h,
        None => return Decision::Drop,
    };
    if header.metadata.message_type == MessageType::Response {
        return Decision::Drop;
    }
    if header.metadata.op_code != OpCode::Query {
        return Decision::Reply(error_reply(&header, RCODE_NOTIMP));
    }
    let msg = match Message::from_vec(query) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(error = %e, "malformed DNS query: FORMERR");
            return Decision::Reply(error_reply(&header, RCODE_FORMERR));
        }
    };
    let [question] = msg.queries.as_slice() else {
        return Decision::Reply(error_reply(&header, RCODE_FORMERR));
    };
    let q = Query {
        header,
        labels: labels_of(question.name()),
        qtype: u16::from(question.query_type()),
        qclass: u16::from(question.query_class()),
        edns_size: msg.edns.as_ref().map(|e| e.max_payload()),
    };
    respond(&q, transport, records, cfg, rng)
}

fn labels_of(name: &Name) -> Vec<Vec<u8>> {
    name.iter().map(<[u8]>::to_vec).collect()
}

/// Whether `labels` ends with `suffix` (lowercase), ASCII case-insensitively.
fn under(labels: &[Vec<u8>], suffix: &[Vec<u8>]) -> bool {
    labels.len() >= suffix.len()
        && labels
            .iter()
            .rev()
            .zip(suffix.iter().rev())
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

fn respond(
    q: &Query,
    transport: Transport,
    records: &Records,
    cfg: &AnswerConfig,
    rng: &mut impl FnMut() -> u64,
) -> Decision {
    let arpa = [b"in-addr".to_vec(), b"arpa".to_vec()];
    let in_domain = under(&q.labels, &cfg.domain);
    let in_arpa = under(&q.labels, &arpa);
    // Longest zone match; the domain could itself be under in-addr.arpa.
    if in_domain && (!in_arpa || cfg.domain.len() >= arpa.len()) {
        return local(q, &q.labels, transport, records, cfg, rng);
    }
    if in_arpa {
        return reverse(q, transport, records, cfg);
    }
    if q.labels.len() == 1 {
        let mut full = q.labels.clone();
        full.extend(cfg.domain.iter().cloned());
        return local(q, &full, transport, records, cfg, rng);
    }
    Decision::Forward
}

/// The name to look up in the store: labels joined, with the final dot.
fn fqdn(labels: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for l in labels {
        s.push_str(&String::from_utf8_lossy(l));
        s.push('.');
    }
    s
}

fn local(
    q: &Query,
    lookup_labels: &[Vec<u8>],
    transport: Transport,
    records: &Records,
    cfg: &AnswerConfig,
    rng: &mut impl FnMut() -> u64,
) -> Decision {
    let mut addrs = records.lookup(&fqdn(lookup_labels));
    if addrs.is_empty() {
        return Decision::Reply(build(q, RCODE_NXDOMAIN, false, &[], cfg.ttl, None));
    }
    if q.qtype != TYPE_A {
        return Decision::Reply(build(q, RCODE_NOERROR, true, &[], cfg.ttl, None));
    }
    shuffle(&mut addrs, rng);
    let rrs: Vec<Rdata> = addrs.into_iter().map(Rdata::A).collect();
    Decision::Reply(build(
        q,
        RCODE_NOERROR,
        true,
        &rrs,
        cfg.ttl,
        size_limit(q, transport),
    ))
}

fn reverse(q: &Query, transport: Transport, records: &Records, cfg: &AnswerConfig) -> Decision {
    let nx = || Decision::Reply(build(q, RCODE_NXDOMAIN, false, &[], cfg.ttl, None));
    if q.qtype != TYPE_PTR {
        return nx();
    }
    let Some(addr) = arpa_addr(&q.labels) else {
        return nx();
    };
    let Some(host) = records.reverse(addr) else {
        return Decision::Forward;
    };
    let Some(target) = host_labels(host) else {
        tracing::debug!(%host, "hostname cannot be a DNS name; PTR forwarded");
        return Decision::Forward;
    };
    Decision::Reply(build(
        q,
        RCODE_NOERROR,
        true,
        &[Rdata::Ptr(target)],
        cfg.ttl,
        size_limit(q, transport),
    ))
}

/// `d.c.b.a.in-addr.arpa.` → `a.b.c.d` (Weave parses the prefix as an IP address).
fn arpa_addr(labels: &[Vec<u8>]) -> Option<Ipv4Addr> {
    let [d, c, b, a, _, _] = labels else {
        return None;
    };
    let text = [a, b, c, d]
        .iter()
        .map(|l| std::str::from_utf8(l).ok())
        .collect::<Option<Vec<&str>>>()?
        .join(".");
    text.parse().ok()
}

/// A registered hostname as labels, if it is a valid DNS name (labels 1..=63 bytes, at most
/// 255 bytes encoded).
fn host_labels(host: &str) -> Option<Vec<Vec<u8>>> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Some(Vec::new());
    }
    let labels: Vec<Vec<u8>> = host.split('.').map(|l| l.as_bytes().to_vec()).collect();
    let ok = labels.iter().all(|l| (1..=63).contains(&l.len())) && encoded_len(&labels) <= 255;
    ok.then_some(labels)
}

fn size_limit(q: &Query, transport: Transport) -> Option<usize> {
    match transport {
        Transport::Tcp => None,
        Transport::Udp => Some(
            q.edns_size
                .map_or(MIN_UDP_SIZE, |s| usize::from(s).max(MIN_UDP_SIZE)),
        ),
    }
}

/// Fisher–Yates with the injected random numbers.
fn shuffle<T>(items: &mut [T], rng: &mut impl FnMut() -> u64) {
    for i in (1..items.len()).rev() {
        let bound = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        let j = usize::try_from(rng() % bound).unwrap_or(0);
        items.swap(i, j);
    }
}

fn encoded_len(labels: &[Vec<u8>]) -> usize {
    labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1
}

fn put_name(out: &mut Vec<u8>, labels: &[Vec<u8>]) {
    for l in labels {
        // Labels come from a parsed name or from `host_labels`: at most 63 bytes.
        out.push(u8::try_from(l.len()).unwrap_or(63));
        out.extend_from_slice(l);
    }
    out.push(0);
}

/// Header bytes 2 and 3 for a reply: QR, the opcode, AA, TC, RD and CD of a QUERY, RA, rcode.
fn flags(header: &Header, aa: bool, tc: bool, rcode: u8) -> [u8; 2] {
    let opcode = u8::from(header.metadata.op_code) & 0x0f;
    let mut hi = 0x80 | (opcode << 3);
    if aa {
        hi |= 0x04;
    }
    if tc {
        hi |= 0x02;
    }
    // miekg/dns `SetReply` copies RD and CD for QUERY only.
    let query = header.metadata.op_code == OpCode::Query;
    if query && header.metadata.recursion_desired {
        hi |= 0x01;
    }
    let mut lo = 0x80 | (rcode & 0x0f);
    if query && header.metadata.checking_disabled {
        lo |= 0x10;
    }
    [hi, lo]
}

/// A reply without a question (FORMERR, NOTIMP): the query's ID and opcode (RD and CD of a QUERY).
fn error_reply(header: &Header, rcode: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&header.metadata.id.to_be_bytes());
    out.extend_from_slice(&flags(header, false, false, rcode));
    out.extend_from_slice(&[0; 8]);
    out
}

/// The reply to `q` with answers `rrs` (owner = the question's name), cut to `limit` bytes.
fn build(q: &Query, rcode: u8, aa: bool, rrs: &[Rdata], ttl: u32, limit: Option<usize>) -> Vec<u8> {
    let mut body = Vec::new();
    put_name(&mut body, &q.labels);
    body.extend_from_slice(&q.qtype.to_be_bytes());
    body.extend_from_slice(&q.qclass.to_be_bytes());
    let mut count: u16 = 0;
    let mut tc = false;
    for rr in rrs {
        let mut rec = Vec::new();
        put_name(&mut rec, &q.labels);
        let (rtype, rdata) = match rr {
            Rdata::A(a) => (TYPE_A, a.octets().to_vec()),
            Rdata::Ptr(target) => {
                let mut d = Vec::new();
                put_name(&mut d, target);
                (TYPE_PTR, d)
            }
        };
        rec.extend_from_slice(&rtype.to_be_bytes());
        rec.extend_from_slice(&CLASS_IN.to_be_bytes());
        rec.extend_from_slice(&ttl.to_be_bytes());
        rec.extend_from_slice(&u16::try_from(rdata.len()).unwrap_or(0).to_be_bytes());
        rec.extend_from_slice(&rdata);
        let fits = limit.is_none_or(|l| HEADER_LEN + body.len() + rec.len() <= l);
        if !fits || count == u16::MAX {
            tc = true;
            break;
        }
        body.extend_from_slice(&rec);
        count += 1;
    }
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&q.header.metadata.id.to_be_bytes());
    out.extend_from_slice(&flags(&q.header, aa, tc, rcode));
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests;
