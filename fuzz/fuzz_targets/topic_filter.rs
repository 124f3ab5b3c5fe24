//! Arbitrary text → topic name, topic filter and shared-subscription parsing, and the algebra of
//! `matches`, `covers` and `overlaps` on what parses. Checks: `properties::topic_filters`.
#![no_main]

use libfuzzer_sys::fuzz_target;

// Each target uses its own part of the shared properties.
#[allow(dead_code)]
#[path = "../properties.rs"]
mod properties;

fuzz_target!(|data: &[u8]| {
    properties::topic_filters(data);
});
