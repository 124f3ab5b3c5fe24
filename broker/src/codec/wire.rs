//! MQTT data representations (§1.5): integers, Variable Byte Integers, UTF-8 strings and
//! binary data, read from a bounded packet body and written to a buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};

/// Largest value a 4-byte Variable Byte Integer can hold.
pub(super) const MAX_VARINT: u32 = 268_435_455;

/// Parses a Variable Byte Integer from the front of `bytes`, returning the value and the
/// number of bytes it used. `Ok(None)` means more bytes are needed to finish it.
pub(super) fn parse_varint(bytes: &[u8], what: &'static str) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value = 0u32;
    for (i, &b) in bytes.iter().take(4).enumerate() {
        value |= u32::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            // A zero final byte after a continuation byte means a shorter encoding existed.
            if i > 0 && b == 0 {
                return Err(DecodeError::InvalidVarInt(what));
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        Err(DecodeError::InvalidVarInt(what))
    } else {
        Ok(None)
    }
}

/// Number of bytes `put_varint` writes for `v`.
pub(super) fn varint_len(v: u32) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `v` as a Variable Byte Integer; callers guarantee `v <= MAX_VARINT`.
pub(super) fn put_varint(buf: &mut BytesMut, mut v: u32) {
    loop {
        let mut byte = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if v == 0 {
            return;
        }
    }
}

/// Converts a length to a Variable Byte Integer value, refusing anything too large.
pub(super) fn varint_value(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).ok().filter(|&n| n <= MAX_VARINT).ok_or(EncodeError::PacketTooLarge(len))
}

/// Writes a UTF-8 Encoded String, refusing what a strict receiver would reject.
pub(super) fn put_string(buf: &mut BytesMut, s: &str, field: &'static str) -> Result<(), EncodeError> {
    if s.contains('\0') {
        return Err(EncodeError::NullCharacter(field));
    }
    put_binary(buf, s.as_bytes(), field)
}

/// Writes Binary Data (two-byte length prefix).
pub(super) fn put_binary(buf: &mut BytesMut, b: &[u8], field: &'static str) -> Result<(), EncodeError> {
    let len = u16::try_from(b.len()).map_err(|_| EncodeError::TooLong { field, len: b.len() })?;
    buf.put_u16(len);
    buf.put_slice(b);
    Ok(())
}

/// Cursor over one packet body. Every read is bounds-checked so a lying length field
/// becomes a [`DecodeError::Truncated`] instead of a panic or an oversized allocation.
pub(super) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(super) fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn need(&self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            Err(DecodeError::Truncated(what))
        } else {
            Ok(())
        }
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        self.need(1, what)?;
        Ok(self.buf.get_u8())
    }

    pub(super) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.need(2, what)?;
        Ok(self.buf.get_u16())
    }

    pub(super) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.need(4, what)?;
        Ok(self.buf.get_u32())
    }

    pub(super) fn varint(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let (value, used) = parse_varint(&self.buf, what)?.ok_or(DecodeError::Truncated(what))?;
        self.buf.advance(used);
        Ok(value)
    }

    /// Splits off the next `n` bytes without copying.
    pub(super) fn bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        self.need(n, what)?;
        Ok(self.buf.split_to(n))
    }

    pub(super) fn binary(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u16(what)?;
        self.bytes(usize::from(len), what)
    }

    pub(super) fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let raw = self.binary(what)?;
        let s = std::str::from_utf8(&raw).map_err(|_| DecodeError::InvalidUtf8(what))?;
        if s.contains('\0') {
            return Err(DecodeError::NullCharacter(what));
        }
        Ok(s.to_owned())
    }

    /// Everything left, e.g. a PUBLISH payload.
    pub(super) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Fails if anything is left after the last field of `packet`.
    pub(super) fn finish(self, packet: &'static str) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { packet, count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u32) -> Vec<u8> {
        let mut b = BytesMut::new();
        put_varint(&mut b, v);
        b.to_vec()
    }

    #[test]
    fn varint_boundaries_round_trip_mqtt_1_5_5() {
        for v in [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, MAX_VARINT] {
            let e = enc(v);
            assert_eq!(e.len(), varint_len(v));
            assert_eq!(parse_varint(&e, "t").unwrap(), Some((v, e.len())));
        }
        assert_eq!(enc(MAX_VARINT), [0xFF, 0xFF, 0xFF, 0x7F]);
    }

    #[test]
    fn varint_five_bytes_is_malformed_mqtt_2_2_3() {
        let r = parse_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01], "t");
        assert_eq!(r, Err(DecodeError::InvalidVarInt("t")));
        // Four continuation bytes are already enough to know it is invalid.
        assert!(parse_varint(&[0x80, 0x80, 0x80, 0x80], "t").is_err());
    }

    #[test]
    fn varint_non_minimal_is_malformed_mqtt_1_5_5_1() {
        assert!(parse_varint(&[0x80, 0x00], "t").is_err());
        assert!(parse_varint(&[0xFF, 0x80, 0x00], "t").is_err());
    }

    #[test]
    fn varint_incomplete_needs_more() {
        assert_eq!(parse_varint(&[], "t").unwrap(), None);
        assert_eq!(parse_varint(&[0x80, 0x80, 0x80], "t").unwrap(), None);
    }

    #[test]
    fn string_rejects_nul_mqtt_1_5_3_2_and_bad_utf8_mqtt_1_5_3_1() {
        let mut r = Reader::new(Bytes::from_static(&[0, 3, b'a', 0, b'b']));
        assert_eq!(r.string("s"), Err(DecodeError::NullCharacter("s")));
        let mut r = Reader::new(Bytes::from_static(&[0, 2, 0xC3, 0x28]));
        assert_eq!(r.string("s"), Err(DecodeError::InvalidUtf8("s")));
        // Encoded surrogates (ED A0 80) are invalid UTF-8 too.
        let mut r = Reader::new(Bytes::from_static(&[0, 3, 0xED, 0xA0, 0x80]));
        assert_eq!(r.string("s"), Err(DecodeError::InvalidUtf8("s")));
        // Control characters are only SHOULD NOT: accepted.
        let mut r = Reader::new(Bytes::from_static(&[0, 1, 0x07]));
        assert_eq!(r.string("s").unwrap(), "\u{7}");
    }

    #[test]
    fn reads_past_end_are_truncated_not_panics() {
        let mut r = Reader::new(Bytes::from_static(&[0xFF, 0xFF, 1]));
        assert_eq!(r.binary("b"), Err(DecodeError::Truncated("b")));
        let mut r = Reader::new(Bytes::new());
        assert!(r.u8("x").is_err() && r.u16("x").is_err() && r.u32("x").is_err());
        assert!(r.varint("x").is_err());
    }

    #[test]
    fn put_string_limits() {
        let mut b = BytesMut::new();
        let long = "a".repeat(65_536);
        assert!(matches!(put_string(&mut b, &long, "f"), Err(EncodeError::TooLong { .. })));
        assert_eq!(put_string(&mut b, "a\0", "f"), Err(EncodeError::NullCharacter("f")));
        put_string(&mut b, &long[..65_535], "f").unwrap();
        assert_eq!(b.len(), 65_537);
        assert!(varint_value(MAX_VARINT as usize + 1).is_err());
    }
}
