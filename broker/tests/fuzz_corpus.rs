//! The fuzz targets' properties (`fuzz/properties.rs`) on every `make test`, without libFuzzer:
//! every committed corpus file is replayed, then deterministic random inputs and mutations of
//! the corpus are thrown at the same checks. `make fuzz` is the long, coverage-guided version.

use std::fs;
use std::path::{Path, PathBuf};

use tributary_broker::codec::ProtocolVersion;

#[path = "../../fuzz/properties.rs"]
mod properties;

use properties::{Decoded, End};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

/// The corpus files of `target` as (file name, contents), sorted by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().expect("file name").to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

const DECODERS: [(&str, ProtocolVersion); 2] =
    [("decode_v311", ProtocolVersion::V311), ("decode_v5", ProtocolVersion::V5)];

#[test]
fn decoder_corpus_replays() {
    for (target, version) in DECODERS {
        for (name, data) in corpus(target) {
            let decoded = properties::decode_connection(&data, version);
            // The encoded samples (broker/src/codec/fuzz.rs) must decode whole; other files are
            // regression inputs, which only must not break a property.
            if name.starts_with("sample-") || name == "session" {
                assert!(decoded.packets > 0 && decoded.end == End::Drained, "{target}/{name}: {decoded:?}");
            }
        }
    }
}

#[test]
fn topic_filter_corpus_replays() {
    for (_, data) in corpus("topic_filter") {
        properties::topic_filters(&data);
    }
}

#[test]
fn config_corpus_replays() {
    for (name, data) in corpus("config") {
        // Seeds named `invalid-*` are rejected on purpose; the rest are configurations.
        let result = properties::config(&data);
        assert_eq!(result.is_ok(), !name.starts_with("invalid-"), "config/{name}: {result:?}");
    }
}

/// deploy/local/broker.yaml, the file `make run` uses, is a seed kept equal to its source, so
/// the replay above also proves that it loads.
#[test]
fn config_corpus_holds_the_local_run_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |p: &str| fs::read(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let same = read("fuzz/corpus/config/local-broker.yaml") == read("deploy/local/broker.yaml");
    assert!(same, "fuzz/corpus/config/local-broker.yaml differs from deploy/local/broker.yaml: copy it again");
}

/// xorshift64: tiny, deterministic, good enough to spray bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A random byte, or one of `alphabet` (when non-empty) three times in four.
    fn byte(&mut self, alphabet: &[u8]) -> u8 {
        if alphabet.is_empty() || self.below(4) == 0 {
            self.next() as u8
        } else {
            alphabet[self.below(alphabet.len())]
        }
    }

    /// One to three random edits of `input`: overwrite, flip a bit, truncate, insert.
    fn mutate(&mut self, input: &mut Vec<u8>, alphabet: &[u8]) {
        for _ in 0..=self.below(3) {
            match self.below(4) {
                0 if !input.is_empty() => {
                    let at = self.below(input.len());
                    input[at] = self.byte(alphabet);
                }
                1 if !input.is_empty() => {
                    let at = self.below(input.len());
                    input[at] ^= 1 << self.below(8);
                }
                2 => input.truncate(self.below(input.len() + 1)),
                _ => {
                    let at = self.below(input.len() + 1);
                    input.insert(at, self.byte(alphabet));
                }
            }
        }
    }
}

/// Outcome counts, so the test can prove it reached the parsers rather than bouncing off
/// the fixed header every time.
#[derive(Default, Debug)]
struct Stats {
    decoded: usize,
    errors: usize,
    incomplete: usize,
}

impl Stats {
    fn add(&mut self, d: Decoded) {
        self.decoded += d.packets;
        match d.end {
            End::Error => self.errors += 1,
            End::Incomplete => self.incomplete += 1,
            End::Drained => {}
        }
    }
}

#[test]
fn random_and_mutated_packets_keep_the_properties() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let seeds: Vec<(Vec<u8>, ProtocolVersion)> =
        DECODERS.iter().flat_map(|&(target, v)| corpus(target).into_iter().map(move |(_, data)| (data, v))).collect();
    let mut stats = Stats::default();
    // 100,000 random byte strings plus 100,000 mutated corpus files.
    for i in 0..200_000 {
        let v = if rng.below(2) == 0 { ProtocolVersion::V311 } else { ProtocolVersion::V5 };
        if i % 2 == 0 {
            let len = rng.below(49);
            let mut input: Vec<u8> = (0..len).map(|_| rng.byte(&[])).collect();
            if len >= 1 {
                // Mostly no size limit (mode bits 1-7 clear), either connection state.
                if rng.below(4) != 0 {
                    input[0] &= 1;
                }
                // Mostly keep the remaining length plausible so bodies actually get parsed.
                if len >= 3 && rng.below(4) != 0 {
                    input[2] = (len - 3) as u8 & 0x7F;
                }
            }
            stats.add(properties::decode_connection(&input, v));
        } else {
            let (seed, v) = &seeds[rng.below(seeds.len())];
            let mut input = seed.clone();
            rng.mutate(&mut input, &[]);
            stats.add(properties::decode_connection(&input, *v));
        }
    }
    eprintln!("{stats:?}");
    assert!(stats.decoded > 20_000 && stats.errors > 100_000 && stats.incomplete > 15_000, "{stats:?}");
}

#[test]
fn mutated_topic_filters_keep_the_properties() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let seeds = corpus("topic_filter");
    // The characters the topic syntax cares about, so mutations land on its edge cases.
    let alphabet = b"/+#$\n\0a";
    for _ in 0..20_000 {
        let mut input = seeds[rng.below(seeds.len())].1.clone();
        rng.mutate(&mut input, alphabet);
        properties::topic_filters(&input);
    }
}

#[test]
fn mutated_configs_keep_the_properties() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let seeds = corpus("config");
    // YAML's structural characters, and digits for the numeric limits.
    let alphabet = b" \n:-{}[],\"'&*#0123456789";
    let mut parsed = 0;
    for _ in 0..5_000 {
        let mut input = seeds[rng.below(seeds.len())].1.clone();
        rng.mutate(&mut input, alphabet);
        // The target only sees UTF-8 in practice too: libFuzzer's mutations of text seeds.
        let input = String::from_utf8_lossy(&input).into_owned();
        parsed += usize::from(properties::config(input.as_bytes()).is_ok());
    }
    // Most single edits of a valid file leave it valid: the round trip was exercised.
    assert!(parsed > 300, "only {parsed} mutated configurations parsed");
}
