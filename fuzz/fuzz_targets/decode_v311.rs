//! Bytes → the decoder of an MQTT 3.1.1 connection → re-encode → decode: never a panic, and
//! whatever decodes round-trips to an equal packet. Input layout and checks:
//! `properties::decode_connection`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary_broker::codec::ProtocolVersion;

// Each target uses its own part of the shared properties.
#[allow(dead_code)]
#[path = "../properties.rs"]
mod properties;

fuzz_target!(|data: &[u8]| {
    properties::decode_connection(data, ProtocolVersion::V311);
});
