//! The properties the fuzz targets check, in one place: the targets in `fuzz/fuzz_targets/` and
//! the corpus replay of `make test` (`broker/tests/fuzz_corpus.rs`) both include this file with
//! `#[path]`, so a corpus file is judged the same way by libFuzzer and by `cargo test`.
//!
//! Every function panics when a property fails (that is how libFuzzer learns of a bug) and
//! returns normally for any input the code under test may reject.

use bytes::BytesMut;
use tributary_broker::codec::{decode, encode, Packet, ProtocolVersion};
use tributary_broker::config::Config;
use tributary_broker::topic::{
    covers, matches, overlaps, parse_shared, validate_filter, validate_topic_name, MAX_TOPIC_LEN, SHARE_PREFIX,
};

/// How an input to [`decode_connection`] ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum End {
    /// Every byte was consumed by whole packets.
    #[default]
    Drained,
    /// The rest is the start of a packet: the decoder asked for more bytes.
    Incomplete,
    /// The decoder rejected a packet.
    Error,
}

/// What [`decode_connection`] made of one input; the replay test counts these to show that
/// inputs reach the packet parsers rather than bouncing off the fixed header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Packets decoded (and round-tripped) before the end.
    pub packets: usize,
    /// Why decoding stopped.
    pub end: End,
}

/// Feeds `data` to the decoder the way a connection does and round-trips every packet.
///
/// Input layout: byte 0 is a mode byte, the rest is what the client sent. Bit 0 of the mode
/// clear: the connection has just opened, so the first packet must be a CONNECT (decoded with
/// no version) and the following ones are decoded with the CONNECT's version, whatever
/// `version` says; bit 0 set: CONNECT was already seen and negotiated `version`. Bits 1–7
/// give the maximum packet size in units of 8 bytes (0: unlimited), so the size limit is
/// exercised too.
///
/// Property: no panic, and each packet decoded re-encodes (with the connection's version)
/// into bytes that decode, with the same decoder state, to an equal packet and nothing more.
pub fn decode_connection(data: &[u8], version: ProtocolVersion) -> Decoded {
    let Some((&mode, wire)) = data.split_first() else {
        return Decoded::default();
    };
    let mut negotiated = if mode & 1 == 0 { None } else { Some(version) };
    let max = match u32::from(mode >> 1) {
        0 => u32::MAX,
        units => units * 8,
    };
    let mut buf = BytesMut::from(wire);
    let mut out = Decoded::default();
    loop {
        let packet = match decode(&mut buf, negotiated, max) {
            Ok(Some(packet)) => packet,
            Ok(None) => {
                out.end = if buf.is_empty() { End::Drained } else { End::Incomplete };
                return out;
            }
            Err(e) => {
                // What a connection does with the error: report its reason code and log it.
                let _ = (e.reason_code(), e.to_string());
                out.end = End::Error;
                return out;
            }
        };
        let v = match (&packet, negotiated) {
            (Packet::Connect(c), None) => c.protocol,
            (_, Some(v)) => v,
            (_, None) => panic!("a packet other than CONNECT decoded before CONNECT: {packet:?}"),
        };
        let mut again = BytesMut::new();
        encode(&packet, v, &mut again).unwrap_or_else(|e| panic!("{packet:?} does not re-encode: {e}"));
        let encoded = again.to_vec();
        let back = decode(&mut again, negotiated, u32::MAX);
        assert_eq!(back, Ok(Some(packet)), "re-encoded as {encoded:02x?}");
        assert!(again.is_empty(), "{} bytes left after decoding {encoded:02x?}", again.len());
        negotiated = Some(v);
        out.packets += 1;
    }
}

/// A topic name that filter `filter` (valid) matches: each wildcard level becomes `w`.
fn witness(filter: &str) -> String {
    let levels: Vec<&str> = filter.split('/').map(|l| if l == "+" || l == "#" { "w" } else { l }).collect();
    levels.join("/")
}

/// Checks the validators and the matching algebra on up to three strings: `data` as text
/// (invalid UTF-8 replaced), split at the first two newlines.
///
/// Only what `broker/src/topic.rs` documents is asserted: the validators accept exactly the
/// documented syntax; `matches` does not panic on anything; a valid name is a valid filter
/// that matches itself; `parse_shared` returns `Ok(None)` exactly when the first level is not
/// `$share`, and otherwise a valid filter; `covers(a, b)` means `a` matches every topic `b`
/// matches; `overlaps(a, b)` means some topic matches both.
pub fn topic_filters(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parts: Vec<&str> = text.splitn(3, '\n').collect();
    let filters: Vec<&str> = parts.iter().copied().filter(|s| validate_filter(s).is_ok()).collect();
    for s in &parts {
        one_string(s);
        for t in &parts {
            // Documented not to panic on invalid input; the answer is unspecified.
            matches(s, t);
        }
    }
    for &a in &filters {
        for &b in &filters {
            filter_pair(a, b);
            for &c in &filters {
                if covers(a, b) && covers(b, c) {
                    assert!(covers(a, c), "covers is not transitive: {a:?} ⊇ {b:?} ⊇ {c:?}");
                }
            }
        }
        for t in parts.iter().filter(|t| validate_topic_name(t).is_ok()) {
            for &b in &filters {
                if covers(a, b) && matches(b, t) {
                    assert!(matches(a, t), "{a:?} covers {b:?}, which matches {t:?}, but {a:?} does not");
                }
                if matches(a, t) && matches(b, t) {
                    assert!(overlaps(a, b), "{a:?} and {b:?} both match {t:?} but do not overlap");
                }
            }
        }
    }
}

/// The validators on one string.
fn one_string(s: &str) {
    let name = validate_topic_name(s);
    let filter = validate_filter(s);
    for e in [name.as_ref().err(), filter.as_ref().err()].into_iter().flatten() {
        let _ = e.to_string();
    }
    let common = !s.is_empty() && s.len() <= MAX_TOPIC_LEN && !s.contains('\0');
    assert_eq!(name.is_ok(), common && !s.contains(['+', '#']), "validate_topic_name({s:?}) = {name:?}");
    let levels: Vec<&str> = s.split('/').collect();
    let whole_levels = levels
        .iter()
        .enumerate()
        .all(|(i, l)| *l == "+" || (*l == "#" && i + 1 == levels.len()) || !l.contains(['+', '#']));
    assert_eq!(filter.is_ok(), common && whole_levels, "validate_filter({s:?}) = {filter:?}");
    if name.is_ok() {
        assert!(matches(s, s), "topic name {s:?} as a filter does not match itself");
    }
    if filter.is_ok() {
        let w = witness(s);
        assert_eq!(validate_topic_name(&w), Ok(()), "witness {w:?} of {s:?}");
        assert!(matches(s, &w), "{s:?} does not match {w:?}");
        assert!(covers(s, s), "{s:?} does not cover itself");
        assert!(overlaps(s, s), "{s:?} does not overlap itself");
    }
    let first_is_share = levels[0] == SHARE_PREFIX;
    match parse_shared(s) {
        Ok(None) => assert!(!first_is_share, "parse_shared({s:?}) took a shared subscription for a filter"),
        Ok(Some(shared)) => {
            assert!(first_is_share, "parse_shared({s:?}) = {shared:?}");
            assert!(!shared.group.is_empty() && !shared.group.contains(['+', '#', '/']), "{shared:?}");
            assert_eq!(validate_filter(shared.filter), Ok(()), "{shared:?}");
            assert_eq!(format!("{SHARE_PREFIX}/{}/{}", shared.group, shared.filter), s);
        }
        Err(e) => {
            assert!(first_is_share, "parse_shared({s:?}) rejected an ordinary filter: {e}");
            let _ = e.to_string();
        }
    }
}

/// The algebra on two valid filters.
fn filter_pair(a: &str, b: &str) {
    assert_eq!(overlaps(a, b), overlaps(b, a), "overlaps is not symmetric on {a:?}, {b:?}");
    let w = witness(b);
    if covers(a, b) {
        assert!(overlaps(a, b), "{a:?} covers {b:?} but does not overlap it");
        assert!(matches(a, &w), "{a:?} covers {b:?} but does not match {w:?}");
    }
    if matches(a, &w) {
        assert!(overlaps(a, b), "{a:?} and {b:?} both match {w:?} but do not overlap");
    }
    if validate_topic_name(b).is_ok() {
        // A filter without wildcards matches exactly one topic, itself.
        assert_eq!(covers(a, b), matches(a, b), "covers({a:?}, {b:?}) against matches");
        assert_eq!(overlaps(a, b), matches(a, b), "overlaps({a:?}, {b:?}) against matches");
    }
}

/// Checks the configuration parser on `data`: no panic, and a configuration that parses and
/// validates, written back with serde_yaml, parses and validates to an equal configuration
/// (the operator renders the broker's file that way). `Err` says why `data` was rejected
/// (not UTF-8, or the parser's message), which is no property failure.
pub fn config(data: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
    let config = Config::from_yaml_str(text).map_err(|e| e.to_string())?;
    let yaml = serde_yaml::to_string(&config).unwrap_or_else(|e| panic!("{config:?} does not serialise: {e}"));
    let again = Config::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("written back as\n{yaml}\nit fails: {e}"));
    assert_eq!(again, config, "written back as\n{yaml}");
    Ok(())
}
