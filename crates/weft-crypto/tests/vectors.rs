//! Conformance vectors from Appendix A of the Weave protocol reference
//! (F: session key, G: TCP sealing, S2/S3: sleeve packets, K: IPsec key).

use weft_crypto::{
    derive_ipsec_key, sleeve_nonce, tcp_nonce, CryptoError, EphemeralKeyPair, SessionKey, Side,
    SleeveDecryptor, SleeveEncryptor, SleeveHeader, SleeveStream, TcpOpener, TcpSealer,
    SLEEVE_OVERHEAD, TAG_LEN,
};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn counting(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start + i as u8)
}

const K_F: &str = "28db2f6c9b6a6b6d197e6a88ea60a996f47d38f8de7f5fbeb2311e182ede683e";
const SENDER: [u8; 6] = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc];
const S2: &str = "123456789abc0000000000000000023e78024af602d7fab4163dac137c178556c20e37f790b9a32bdafd9e2135b095";
const S3: &str = "123456789abc8000000000000000c731299d934ab08dbc7b62c69a4c493f0dc61e80902682de5ff0e01d2e9d7072cf";

/// The frame list inside S2/S3: one frame (src 12:34:56:78:9a:bc,
/// dst de:ad:be:ef:00:01, length 3, bytes `010203`).
fn s_frames() -> Vec<u8> {
    h("123456789abc deadbeef0001 0003 010203")
}

fn key_f() -> SessionKey {
    SessionKey::from_bytes(h(K_F).try_into().unwrap())
}

fn key_s() -> SessionKey {
    SessionKey::from_bytes(std::array::from_fn(|i| i as u8))
}

#[test]
fn vector_f_session_key() {
    let a = EphemeralKeyPair::from_private_bytes(counting(0x01));
    let b = EphemeralKeyPair::from_private_bytes(counting(0x80));
    assert_eq!(
        a.public_key().to_vec(),
        h("07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c")
    );
    assert_eq!(
        b.public_key().to_vec(),
        h("493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531d")
    );
    let ka = a.session_key(&b.public_key(), b"s3cret").unwrap();
    let kb = b.session_key(&a.public_key(), b"s3cret").unwrap();
    assert_eq!(ka.as_bytes().to_vec(), h(K_F));
    assert_eq!(kb.as_bytes().to_vec(), h(K_F));
}

#[test]
fn vector_g_tcp() {
    let mut n0 = [0u8; 24];
    n0[0] = 0xc0;
    assert_eq!(tcp_nonce(Side::Outbound, 0), n0);
    let mut n1 = n0;
    n1[23] = 1;
    assert_eq!(tcp_nonce(Side::Outbound, 1), n1);
    let mut in0 = [0u8; 24];
    in0[0] = 0x40;
    assert_eq!(tcp_nonce(Side::Inbound, 0), in0);

    // Heartbeat plaintext `00` sealed by the outbound side as message #0.
    let mut sealer = TcpSealer::new(&key_f(), Side::Outbound);
    let mut buf = [0u8; TAG_LEN + 1];
    buf[TAG_LEN] = 0x00;
    sealer.seal_in_place(&mut buf).unwrap();
    assert_eq!(buf.to_vec(), h("c959b16b73ea4c1736088a68ac3e8e5cee"));
    assert_eq!(sealer.counter(), Some(1));

    // ... and the inbound side opens it.
    let mut opener = TcpOpener::new(&key_f(), Side::Inbound);
    assert_eq!(opener.open_in_place(&mut buf).unwrap(), &[0x00]);
    assert_eq!(opener.counter(), Some(1));

    // Replaying it (now counter 1) fails, and the failure is typed.
    let mut again = h("c959b16b73ea4c1736088a68ac3e8e5cee");
    assert_eq!(
        opener.open_in_place(&mut again).unwrap_err(),
        CryptoError::DecryptFailed
    );
    // An outbound-side opener (wrong polarity) cannot open it at #0 either.
    let mut wrong = TcpOpener::new(&key_f(), Side::Outbound);
    assert_eq!(
        wrong.open_in_place(&mut again).unwrap_err(),
        CryptoError::DecryptFailed
    );
}

#[test]
fn vector_s2_s3_exact_bytes() {
    let mut non_df = SleeveEncryptor::new(&key_s(), Side::Outbound, SENDER, SleeveStream::NonDf);
    let mut df = SleeveEncryptor::new(&key_s(), Side::Outbound, SENDER, SleeveStream::Df);
    let mut out = [0u8; 64];
    let n = non_df.seal_into(&s_frames(), &mut out).unwrap();
    assert_eq!(n, SLEEVE_OVERHEAD + 17);
    assert_eq!(out[..n].to_vec(), h(S2));
    let n = df.seal_into(&s_frames(), &mut out).unwrap();
    assert_eq!(out[..n].to_vec(), h(S3));

    let hdr = SleeveHeader::parse(&h(S3)).unwrap();
    assert_eq!(hdr.sender, SENDER);
    assert_eq!(hdr.stream, SleeveStream::Df);
    assert_eq!(hdr.seq, 0);
    // The DF flag is part of the nonce (byte 16).
    let nonce = sleeve_nonce(Side::Outbound, hdr.seq_field());
    assert_eq!(nonce[0], 0x80);
    assert_eq!(nonce[16], 0x80);
}

#[test]
fn vector_s2_s3_decrypt_and_replay() {
    let mut d = SleeveDecryptor::new(&key_s(), Side::Inbound);
    let mut s2 = h(S2);
    assert_eq!(d.open_in_place(&mut s2).unwrap().unwrap(), &s_frames()[..]);
    let mut s3 = h(S3);
    assert_eq!(d.open_in_place(&mut s3).unwrap().unwrap(), &s_frames()[..]);
    // Second delivery of S3: no frame, no error.
    let mut s3 = h(S3);
    assert_eq!(d.open_in_place(&mut s3), Ok(None));
    // S2 too.
    let mut s2 = h(S2);
    assert_eq!(d.open_in_place(&mut s2), Ok(None));
    // The outbound side (wrong polarity) cannot open them.
    let mut wrong = SleeveDecryptor::new(&key_s(), Side::Outbound);
    let mut s3 = h(S3);
    assert_eq!(
        wrong.open_in_place(&mut s3).unwrap_err(),
        CryptoError::DecryptFailed
    );
}

#[test]
fn vector_k_ipsec_key() {
    let nonce: [u8; 32] = std::array::from_fn(|i| 0xa0 + i as u8);
    let key = derive_ipsec_key(&key_f(), &nonce, 0x1234_5678_9abc);
    assert_eq!(
        key.as_bytes().to_vec(),
        h("de2704fe26562d274ddbb298c6af542fe9fe5b3cac348cba5d3ddf977c7add28e8b6ac19")
    );
    assert_eq!(key.aes_key(), &key.as_bytes()[..32]);
    assert_eq!(key.salt(), &h("e8b6ac19")[..]);
}
