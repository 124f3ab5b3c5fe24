//! Arbitrary text → the configuration parser: never a panic, and a configuration that parses
//! survives serialisation and parsing unchanged. Checks: `properties::config`.
#![no_main]

use libfuzzer_sys::fuzz_target;

// Each target uses its own part of the shared properties.
#[allow(dead_code)]
#[path = "../properties.rs"]
mod properties;

fuzz_target!(|data: &[u8]| {
    let _rejected = properties::config(data);
});
