//! The decoder fuzz targets' seed corpus (`fuzz/corpus/decode_v311/`, `fuzz/corpus/decode_v5/`)
//! is made of the sample packets of every type, encoded. The samples are private to the codec's
//! tests, so this test is what keeps the committed files equal to them: it fails when a sample
//! or the encoder changes, and rewrites the files when run with `TRIBUTARY_WRITE_CORPUS=1`.
//! The fuzzing itself, and the deterministic mutation test that `make test` runs, are in
//! `fuzz/` and `broker/tests/fuzz_corpus.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::BytesMut;

use super::packet::{Packet, ProtocolVersion};
use super::{encode, samples};

/// Mode byte of `fuzz/properties.rs`'s `decode_connection`: a new connection (CONNECT first).
const MODE_CONNECTING: u8 = 0x00;
/// Mode byte: CONNECT already seen, the target's version negotiated.
const MODE_CONNECTED: u8 = 0x01;

fn corpus_dir(v: ProtocolVersion) -> PathBuf {
    let target = match v {
        ProtocolVersion::V311 => "decode_v311",
        ProtocolVersion::V5 => "decode_v5",
    };
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

fn encoded(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode(p, v, &mut b).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    b.to_vec()
}

/// The seed files of `v`'s target by name: one per sample packet, and one whole session
/// (a CONNECT with a will followed by every other sample) so streams of packets are seeded.
fn seeds(v: ProtocolVersion) -> BTreeMap<String, Vec<u8>> {
    let packets = samples::packets(v);
    let mut out = BTreeMap::new();
    for (i, p) in packets.iter().enumerate() {
        let kind = format!("{p:?}");
        let kind = kind.split(['(', ' ']).next().unwrap_or("packet").to_lowercase();
        let mode = if matches!(p, Packet::Connect(_)) { MODE_CONNECTING } else { MODE_CONNECTED };
        out.insert(format!("sample-{i:02}-{kind}"), [vec![mode], encoded(p, v)].concat());
    }
    let mut session = vec![MODE_CONNECTING];
    let with_will = packets.iter().find(|p| matches!(p, Packet::Connect(c) if c.will.is_some()));
    session.extend(encoded(with_will.expect("a CONNECT with a will"), v));
    for p in packets.iter().filter(|p| !matches!(p, Packet::Connect(_))) {
        session.extend(encoded(p, v));
    }
    out.insert("session".into(), session);
    out
}

#[test]
fn seed_corpus_is_the_encoded_samples() {
    let write = std::env::var_os("TRIBUTARY_WRITE_CORPUS").is_some();
    for v in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let dir = corpus_dir(v);
        let seeds = seeds(v);
        if write {
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for (name, bytes) in &seeds {
                std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
        // Generated files only; regression inputs added by hand have other names.
        let on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("dir entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("sample-") || name == "session")
            .collect();
        let mut expected: Vec<&String> = seeds.keys().collect();
        let mut found: Vec<&String> = on_disk.iter().collect();
        expected.sort();
        found.sort();
        let hint = "rewrite with TRIBUTARY_WRITE_CORPUS=1 cargo test -p tributary-broker --lib seed_corpus";
        assert_eq!(found, expected, "{}: {hint}", dir.display());
        for (name, bytes) in &seeds {
            let path = dir.join(name);
            let on_disk = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(on_disk == *bytes, "{} differs from the sample: {hint}", path.display());
        }
    }
}
