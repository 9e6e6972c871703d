use super::*;

fn shared(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance"
    ));
    assert!(
        dir.is_dir(),
        "shared conformance data not found at {}: these tests need shared/ beside the repo",
        dir.display()
    );
    dir.join(name)
}

fn open(name: &str) -> Capture {
    Capture::open(shared(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn packet_counts_match_the_conformance_readme() {
    for (name, count) in [
        ("a-2peer-plain.pcap", 175),
        ("b-2peer-encrypted.pcap", 177),
        ("bk-2peer-encrypted-keylog.pcap", 175),
        ("c-3peer-line-h2-ua.pcap", 176),
        ("c-3peer-line-h2-ub.pcap", 166),
    ] {
        assert_eq!(open(name).packet_count(), count, "{name}");
    }
}

#[test]
fn capture_a_tcp_stream() {
    let cap = open("a-2peer-plain.pcap");
    let streams = cap.tcp_streams().unwrap();
    assert_eq!(streams.len(), 1);
    let s = &streams[0];
    assert_eq!(s.client, "198.18.0.2:35107".parse().unwrap());
    assert_eq!(s.server, "198.18.0.1:6783".parse().unwrap());
    let header = b"weave\x01\x02";
    assert_eq!(&s.client_bytes[..7], header);
    assert_eq!(&s.server_bytes[..7], header);
    assert_eq!(s.client_bytes[7], 0, "crypto flag");
    assert_eq!(&s.client_bytes[8..12], &[0, 0, 0, 0xad], "features length");
    // The last message each way is the TCP heartbeat.
    assert!(s.client_bytes.ends_with(&[0, 0, 0, 1, 0]));
    assert!(s.server_bytes.ends_with(&[0, 0, 0, 1, 0]));
    // Sum of segment payloads per direction, from decoded.txt: the stream is
    // header 7 + flag 1 + messages.
    assert_eq!(
        s.client_bytes.len(),
        7 + 1 + 177 + 373 + 578 + 7 + 7 + 9 + 377 + 585 + 377 + 5
    );
}

#[test]
fn capture_a_udp_datagrams() {
    let cap = open("a-2peer-plain.pcap");
    let udp = cap.udp_datagrams().unwrap();
    // weavepcap.py --summary: 38 sleeve packets.
    assert_eq!(udp.len(), 38);
    assert!(udp
        .iter()
        .all(|d| d.src.port() == 6783 && d.dst.port() == 6783));
    // The two 60021-byte fragmentation tests, 41 IP fragments each.
    let frag_tests: Vec<_> = udp.iter().filter(|d| d.payload.len() == 60021).collect();
    assert_eq!(frag_tests.len(), 2);
    assert!(frag_tests.iter().all(|d| d.fragments == 41));
    let fragments: usize = udp
        .iter()
        .filter(|d| d.fragments > 1)
        .map(|d| d.fragments)
        .sum();
    assert_eq!(fragments, 94, "underlay IP fragments");
    // First heartbeat: 42 bytes from h2, DF.
    let hb = udp.iter().find(|d| d.payload.len() == 42).unwrap();
    assert!(hb.dont_fragment);
    assert_eq!(&hb.payload[..6], &[0, 0, 0, 0, 0, 2]);
}

#[test]
fn capture_c_has_one_stream_per_link() {
    for (name, client) in [
        ("c-3peer-line-h2-ua.pcap", [198, 18, 0, 1]),
        ("c-3peer-line-h2-ub.pcap", [198, 18, 0, 3]),
    ] {
        let streams = open(name).tcp_streams().unwrap();
        assert_eq!(streams.len(), 1, "{name}");
        assert_eq!(streams[0].client.ip().octets(), client);
        assert_eq!(streams[0].server, "198.18.0.2:6783".parse().unwrap());
    }
}

// ------------------------------------------------------------ synthetic

fn pcap_file(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for (i, fr) in frames.iter().enumerate() {
        f.extend_from_slice(&(i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        f.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        f.extend_from_slice(fr);
    }
    f
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, id: u16, flags_off: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&flags_off.to_be_bytes());
    f.extend_from_slice(&[64, proto, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(payload);
    f
}

fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0; 4]);
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(body);
    t
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];

#[test]
fn tcp_reorder_retransmit_and_wraparound() {
    let isn = u32::MAX - 2; // sequence numbers wrap inside the stream
    let frames = vec![
        ipv4(A, B, 6, 1, 0, &tcp(1000, 80, isn, 0x02, b"")),
        ipv4(B, A, 6, 2, 0, &tcp(80, 1000, 7, 0x12, b"")),
        ipv4(
            A,
            B,
            6,
            3,
            0,
            &tcp(1000, 80, isn.wrapping_add(4), 0x18, b"def"),
        ),
        ipv4(
            A,
            B,
            6,
            4,
            0,
            &tcp(1000, 80, isn.wrapping_add(1), 0x18, b"abc"),
        ),
        ipv4(
            A,
            B,
            6,
            5,
            0,
            &tcp(1000, 80, isn.wrapping_add(1), 0x18, b"abcd"),
        ),
        ipv4(B, A, 6, 6, 0, &tcp(80, 1000, 8, 0x18, b"ok")),
    ];
    let cap = Capture::parse(&pcap_file(&frames)).unwrap();
    let s = cap.tcp_streams().unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].client, "10.0.0.1:1000".parse().unwrap());
    assert_eq!(s[0].client_bytes, b"abcdef");
    assert_eq!(s[0].server_bytes, b"ok");
}

#[test]
fn tcp_gap_is_an_error() {
    let frames = vec![
        ipv4(A, B, 6, 1, 0, &tcp(1000, 80, 100, 0x02, b"")),
        ipv4(A, B, 6, 2, 0, &tcp(1000, 80, 105, 0x18, b"x")),
    ];
    let cap = Capture::parse(&pcap_file(&frames)).unwrap();
    assert!(matches!(
        cap.tcp_streams(),
        Err(PcapError::TcpGap { offset: 0, .. })
    ));
}

#[test]
fn udp_fragments_out_of_order() {
    let mut udp = Vec::new();
    udp.extend_from_slice(&5000u16.to_be_bytes());
    udp.extend_from_slice(&6000u16.to_be_bytes());
    udp.extend_from_slice(&(8u16 + 20).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend((0..20u8).collect::<Vec<_>>());
    let (first, second) = udp.split_at(16);
    let frames = vec![
        ipv4(A, B, 17, 9, 2, second),         // offset 16 bytes, last
        ipv4(A, B, 17, 9, 0x2000, first),     // offset 0, more fragments
        ipv4(A, B, 17, 10, 0x4000, &udp[..]), // a whole one, DF
    ];
    let cap = Capture::parse(&pcap_file(&frames)).unwrap();
    let d = cap.udp_datagrams().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].fragments, 2);
    assert_eq!(d[0].payload, (0..20u8).collect::<Vec<_>>());
    assert!(d[1].dont_fragment);
    assert_eq!(d[1].src, "10.0.0.1:5000".parse().unwrap());
}

#[test]
fn malformed_files_are_errors() {
    assert!(matches!(
        Capture::parse(b"short"),
        Err(PcapError::Truncated { .. })
    ));
    assert!(matches!(
        Capture::parse(&[0u8; 24]),
        Err(PcapError::BadMagic(0))
    ));
    let mut f = pcap_file(&[vec![1, 2, 3]]);
    f.truncate(f.len() - 1);
    assert!(matches!(
        Capture::parse(&f),
        Err(PcapError::Truncated { .. })
    ));
    // An IPv4 frame whose header is cut short.
    let cap = Capture::parse(&pcap_file(&[vec![0; 12]
        .into_iter()
        .chain([8, 0, 0x45])
        .collect()]))
    .unwrap();
    assert!(cap.tcp_streams().is_err());
}
