//! Deterministic robustness test: random and mutated inputs must never panic, and
//! anything the decoder accepts must re-encode to a packet that decodes identically.

use bytes::BytesMut;

use super::packet::{Packet, ProtocolVersion};
use super::{decode, encode, samples};

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

    fn byte(&mut self) -> u8 {
        self.next() as u8
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

fn check(input: &[u8], version: Option<ProtocolVersion>, max: u32, stats: &mut Stats) {
    let mut buf = BytesMut::from(input);
    // Drain the buffer like a connection would, so consumption bookkeeping is exercised.
    loop {
        let packet = match decode(&mut buf, version, max) {
            Ok(Some(packet)) => packet,
            Ok(None) => {
                stats.incomplete += 1;
                return;
            }
            Err(_) => {
                stats.errors += 1;
                return;
            }
        };
        stats.decoded += 1;
        let v = match (&packet, version) {
            (Packet::Connect(c), _) => c.protocol,
            (_, Some(v)) => v,
            (_, None) => panic!("non-CONNECT decoded without a version: {packet:?}"),
        };
        let mut again = BytesMut::new();
        encode(&packet, v, &mut again).unwrap_or_else(|e| panic!("{packet:?} re-encode: {e}"));
        let back = decode(&mut again, version, u32::MAX);
        assert_eq!(back, Ok(Some(packet)));
        assert!(again.is_empty());
        if version.is_none() {
            return;
        }
    }
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let versions = [None, Some(ProtocolVersion::V311), Some(ProtocolVersion::V5)];
    let mut valid = Vec::new();
    for v in [ProtocolVersion::V311, ProtocolVersion::V5] {
        for p in samples::packets(v) {
            let mut b = BytesMut::new();
            encode(&p, v, &mut b).unwrap_or_else(|e| panic!("{e}"));
            let version = if matches!(p, Packet::Connect(_)) { None } else { Some(v) };
            valid.push((b.to_vec(), version));
        }
    }
    let mut stats = Stats::default();
    // 100,000 random byte strings plus 100,000 mutated valid packets.
    for i in 0..200_000 {
        let max = if rng.below(4) == 0 { rng.below(64) as u32 } else { u32::MAX };
        if i % 2 == 0 {
            let len = rng.below(48);
            let mut input: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            // Mostly keep the remaining length plausible so bodies actually get parsed.
            if len >= 2 && rng.below(4) != 0 {
                input[1] = (len - 2) as u8 & 0x7F;
            }
            check(&input, versions[rng.below(3)], max, &mut stats);
        } else {
            let (base, version) = &valid[rng.below(valid.len())];
            let mut input = base.clone();
            for _ in 0..=rng.below(3) {
                match rng.below(4) {
                    0 if !input.is_empty() => {
                        let at = rng.below(input.len());
                        input[at] = rng.byte();
                    }
                    1 if !input.is_empty() => {
                        let at = rng.below(input.len());
                        input[at] ^= 1 << rng.below(8);
                    }
                    2 => input.truncate(rng.below(input.len() + 1)),
                    _ => {
                        let at = rng.below(input.len() + 1);
                        input.insert(at, rng.byte());
                    }
                }
            }
            check(&input, *version, max, &mut stats);
        }
    }
    eprintln!("{stats:?}");
    assert!(stats.decoded > 6_000 && stats.errors > 40_000 && stats.incomplete > 10_000, "{stats:?}");
}
