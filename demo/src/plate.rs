//! Italian-style licence plates (`AB123CD`) for truck numbers: distinct for distinct numbers
//! and scattered, so that neighbouring trucks do not get neighbouring plates.

/// Letters used on Italian plates (no I, O, Q, U).
const LETTERS: &[u8; 22] = b"ABCDEFGHJKLMNPRSTVWXYZ";
/// How many plates there are: 22⁴ letter combinations × 1000 numbers.
const PLATES: u64 = 22 * 22 * 22 * 22 * 1000;
/// A multiplier prime to `PLATES` (whose factors are 2, 5 and 11), so `n ↦ n × STRIDE mod
/// PLATES` is a bijection.
const STRIDE: u64 = 7919 * 104_729;

/// The plate of truck number `n` (unique for `n` below 234,256,000).
pub fn plate(n: u64) -> String {
    let mut v = (n % PLATES).wrapping_mul(STRIDE % PLATES) % PLATES;
    let digits = v % 1000;
    v /= 1000;
    let mut letters = [0u8; 4];
    for l in letters.iter_mut() {
        *l = LETTERS[(v % 22) as usize];
        v /= 22;
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    format!("{}{digits:03}{}", text(&letters[..2]), text(&letters[2..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn plates_are_distinct_and_well_formed() {
        let plates: HashSet<String> = (0..20_000).map(plate).collect();
        assert_eq!(plates.len(), 20_000);
        for p in plates.iter().take(100) {
            assert_eq!(p.len(), 7, "{p}");
            assert!(p[2..5].bytes().all(|b| b.is_ascii_digit()), "{p}");
        }
    }
}
