//! Which partition a keyed record lands in. The producer uses librdkafka's `murmur2_random`
//! partitioner, the Java client's default, so that records of one MQTT topic land in the same
//! partition whether a device or a Kafka application wrote them (per-topic order), and so that
//! the broker can tell in advance where a record will be (QoS 2 recovery scans that partition).

/// Kafka's murmur2 hash (as in the Java client's `Utils.murmur2`).
pub(crate) fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(&b) = rest.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition of `key` among `partitions` (Java's `toPositive(murmur2(key)) % partitions`).
pub(crate) fn partition_for_key(key: &[u8], partitions: usize) -> i32 {
    let positive = murmur2(key) & 0x7fff_ffff;
    (positive as usize % partitions.max(1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from librdkafka's `rdmurmur2.c` unit test, which checks them against the Java
    /// client.
    #[test]
    fn matches_the_java_client() {
        let cases: [(&str, u32); 4] =
            [("kafka", 0xd067_cf64), ("giberish123456789", 0x8f55_2b0c), ("1234", 0x9fc9_7b14), ("234", 0xe7c0_09ca)];
        for (key, expected) in cases {
            assert_eq!(murmur2(key.as_bytes()), expected, "{key}");
        }
    }

    #[test]
    fn partitions_are_in_range() {
        for i in 0..100 {
            let p = partition_for_key(format!("t/{i}").as_bytes(), 7);
            assert!((0..7).contains(&p));
        }
    }
}
