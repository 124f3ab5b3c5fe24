//! MQTT 3.1.1 (protocol level 4) and MQTT 5.0 (protocol level 5) packet codec.
//!
//! [`decode`] parses one packet from the front of a receive buffer and enforces the
//! wire-level rules of both specifications; [`encode`] serialises any packet for either
//! version. The codec is strict (anything the specification calls malformed or a protocol
//! error is rejected with a [`DecodeError`] whose [`DecodeError::reason_code`] is the
//! MQTT 5 reason code to report) and never panics on untrusted input.
//!
//! Topic filter wildcard placement and shared-subscription syntax are validated by the
//! topic module, not here: the codec only checks what is visible on the wire.
#![deny(missing_docs)]

mod decode;
mod encode;
mod error;
mod packet;
mod properties;
pub mod reason;
mod wire;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod samples;

pub use decode::decode;
pub use encode::encode;
pub use error::{DecodeError, EncodeError};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, LastWill, Packet, ProtocolVersion, PubResp, Publish, QoS, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe,
};
pub use properties::Properties;
