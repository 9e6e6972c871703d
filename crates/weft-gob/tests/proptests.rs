//! Property tests: encode → decode round trips over random types and values,
//! and totality of the decoder on arbitrary, truncated and mutated input.

use proptest::prelude::*;
use weft_gob::{decode_string_map, Decoder, Encoder, GobType, Limits, StructValue, Value};

fn arb_type() -> impl Strategy<Value = GobType> {
    let leaf = prop_oneof![
        Just(GobType::Bool),
        Just(GobType::Int),
        Just(GobType::Uint),
        Just(GobType::String),
        Just(GobType::Bytes),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            inner.clone().prop_map(GobType::slice),
            (inner.clone(), 0u64..4).prop_map(|(e, n)| GobType::array(e, n)),
            (inner.clone(), inner.clone()).prop_map(|(k, v)| GobType::map(k, v)),
            (
                prop::sample::select(vec!["peerSummary", "connectionSummary", "T", ""]),
                prop::collection::vec(inner, 0..5),
            )
                .prop_map(|(name, tys)| {
                    GobType::structure(
                        name,
                        tys.into_iter()
                            .enumerate()
                            .map(|(i, t)| (format!("F{i}"), t)),
                    )
                }),
        ]
    })
}

fn arb_value(ty: &GobType) -> BoxedStrategy<Value> {
    match ty {
        GobType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        GobType::Int => prop_oneof![Just(0i64), any::<i64>(), -200i64..200]
            .prop_map(Value::Int)
            .boxed(),
        GobType::Uint => prop_oneof![Just(0u64), any::<u64>(), 0u64..300]
            .prop_map(Value::Uint)
            .boxed(),
        GobType::String => ".{0,12}".prop_map(Value::String).boxed(),
        GobType::Bytes => prop::collection::vec(any::<u8>(), 0..12)
            .prop_map(Value::Bytes)
            .boxed(),
        GobType::Slice(e) => prop::collection::vec(arb_value(e), 0..4)
            .prop_map(Value::Slice)
            .boxed(),
        GobType::Array { elem, len } => prop::collection::vec(arb_value(elem), *len as usize)
            .prop_map(Value::Array)
            .boxed(),
        GobType::Map(k, v) => prop::collection::vec((arb_value(k), arb_value(v)), 0..4)
            .prop_map(Value::Map)
            .boxed(),
        GobType::Struct(st) => {
            let fields: Vec<_> = st
                .fields
                .iter()
                .map(|f| {
                    let name = f.name.clone();
                    prop::option::of(arb_value(&f.ty)).prop_map(move |v| (name.clone(), v))
                })
                .collect();
            fields
                .prop_map(|fs| {
                    Value::Struct(
                        fs.into_iter()
                            .filter_map(|(n, v)| v.map(|v| (n, v)))
                            .collect::<StructValue>(),
                    )
                })
                .boxed()
        }
    }
}

fn arb_typed_value() -> impl Strategy<Value = (GobType, Value)> {
    arb_type().prop_flat_map(|t| {
        let v = arb_value(&t);
        (Just(t), v)
    })
}

/// What a decoder sees after Go-style encoding: zero-valued non-struct fields
/// are gone, fields are in type order.
fn normalize(ty: &GobType, v: &Value) -> Value {
    match (ty, v) {
        (GobType::Slice(e), Value::Slice(items)) => {
            Value::Slice(items.iter().map(|i| normalize(e, i)).collect())
        }
        (GobType::Array { elem, .. }, Value::Array(items)) => {
            Value::Array(items.iter().map(|i| normalize(elem, i)).collect())
        }
        (GobType::Map(kt, vt), Value::Map(entries)) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| (normalize(kt, k), normalize(vt, v)))
                .collect(),
        ),
        (GobType::Struct(st), Value::Struct(sv)) => {
            let mut out = StructValue::new();
            for f in &st.fields {
                if let Some(fv) = sv.field(&f.name) {
                    if !fv.is_zero() {
                        out.push(f.name.clone(), normalize(&f.ty, fv));
                    }
                }
            }
            Value::Struct(out)
        }
        _ => v.clone(),
    }
}

fn decode_all(bytes: &[u8]) -> Result<Vec<weft_gob::Decoded>, weft_gob::DecodeError> {
    Decoder::new(bytes).collect()
}

/// Runs the decoder to its end; the point is that it returns at all.
fn exhaust(bytes: &[u8]) -> usize {
    let mut n = 0;
    for r in Decoder::new(bytes) {
        if r.is_err() {
            break;
        }
        n += 1;
    }
    let _ = decode_string_map(bytes);
    let tight = Limits {
        max_message_len: 64,
        max_types: 2,
        max_depth: 2,
        max_type_nodes: 4,
        max_elements: 3,
        ..Limits::default()
    };
    for r in Decoder::with_limits(bytes, tight) {
        if r.is_err() {
            break;
        }
    }
    n
}

fn valid_stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(arb_typed_value(), 1..4).prop_map(|vals| {
        let mut enc = Encoder::new();
        for (t, v) in &vals {
            enc.encode(t, v).unwrap();
        }
        enc.into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_single_value((ty, v) in arb_typed_value()) {
        let mut enc = Encoder::new();
        enc.encode(&ty, &v).unwrap();
        let bytes = enc.into_bytes();
        let decoded = decode_all(&bytes).unwrap();
        prop_assert_eq!(decoded.len(), 1);
        let d = &decoded[0];
        prop_assert_eq!(&*d.ty, &ty);
        prop_assert_eq!(&d.value, &normalize(&ty, &v));
        // Re-encoding what was decoded gives the same bytes.
        let mut again = Encoder::new();
        again.encode(&d.ty, &d.value).unwrap();
        prop_assert_eq!(again.into_bytes(), bytes);
    }

    #[test]
    fn round_trip_stream_with_shared_types(
        pool in prop::collection::vec(arb_type(), 1..3),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        first_id in 64i32..100,
        seed in any::<u64>(),
    ) {
        // Values for the picked types, drawn deterministically from `seed`.
        use proptest::strategy::ValueTree;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &{
                let mut s = [0u8; 32];
                s[..8].copy_from_slice(&seed.to_le_bytes());
                s
            }),
        );
        let mut items = Vec::new();
        for p in &picks {
            let ty = p.get(&pool).clone();
            let v = arb_value(&ty).new_tree(&mut runner).unwrap().current();
            items.push((ty, v));
        }
        let mut enc = Encoder::with_first_type_id(first_id);
        for (t, v) in &items {
            enc.encode(t, v).unwrap();
        }
        let bytes = enc.into_bytes();
        let decoded = decode_all(&bytes).unwrap();
        prop_assert_eq!(decoded.len(), items.len());
        let mut again = Encoder::with_first_type_id(first_id);
        for (d, (t, v)) in decoded.iter().zip(&items) {
            prop_assert_eq!(&*d.ty, t);
            prop_assert_eq!(&d.value, &normalize(t, v));
            again.encode(&d.ty, &d.value).unwrap();
        }
        prop_assert_eq!(again.into_bytes(), bytes);
    }

    #[test]
    fn string_maps_round_trip(entries in prop::collection::vec((".{0,8}", ".{0,8}"), 0..8)) {
        let bytes = weft_gob::encode_string_map(entries.iter().map(|(k, v)| (k, v)));
        prop_assert_eq!(decode_string_map(&bytes).unwrap(), entries);
    }

    #[test]
    fn top_level_basics_round_trip(s in ".{0,20}", u in any::<u64>(), i in any::<i64>(), b in prop::collection::vec(any::<u8>(), 0..40), flag in any::<bool>()) {
        let mut enc = Encoder::new();
        enc.encode_string(&s);
        enc.encode_uint(u);
        enc.encode_int(i);
        enc.encode_bytes(&b);
        enc.encode_bool(flag);
        let bytes = enc.into_bytes();
        let mut dec = Decoder::new(&bytes);
        prop_assert_eq!(dec.expect_string().unwrap(), s);
        prop_assert_eq!(dec.expect_uint().unwrap(), u);
        prop_assert_eq!(dec.expect_int().unwrap(), i);
        prop_assert_eq!(dec.expect_bytes().unwrap(), b);
        prop_assert_eq!(dec.expect_bool().unwrap(), flag);
        prop_assert!(dec.expect_end().is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        exhaust(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_definition_never_panic(
        tail in prop::collection::vec(any::<u8>(), 0..128),
        ty in arb_type(),
    ) {
        // Start with a valid definition so the random tail reaches value
        // decoding of a real type.
        let mut enc = Encoder::new();
        enc.encode(&ty, &Value::zero(&ty)).ok();
        let mut bytes = enc.into_bytes();
        bytes.extend_from_slice(&tail);
        exhaust(&bytes);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Remove),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Mutation::Set(i, b) => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Mutation::Insert(i, b) => {
            let i = i.index(bytes.len() + 1);
            bytes.insert(i, *b);
        }
        Mutation::Remove(i) => {
            let i = i.index(bytes.len());
            bytes.remove(i);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn mutated_valid_streams_never_panic(
        stream in valid_stream(),
        muts in prop::collection::vec(arb_mutation(), 1..4),
    ) {
        let mut bytes = stream;
        for m in &muts {
            apply(&mut bytes, m);
        }
        exhaust(&bytes);
    }

    #[test]
    fn every_truncation_of_a_valid_stream_decodes_a_prefix(stream in valid_stream()) {
        let full = decode_all(&stream).unwrap();
        for cut in 0..stream.len() {
            let mut got = 0;
            for r in Decoder::new(&stream[..cut]) {
                match r {
                    Ok(d) => {
                        prop_assert_eq!(&d, &full[got]);
                        got += 1;
                    }
                    Err(_) => break,
                }
            }
            prop_assert!(got <= full.len());
        }
    }
}
