//! MQTT 5 reason codes (MQTT 5 §2.4) and the per-packet sets they may appear in.
//!
//! MQTT 3.1.1 has no reason codes; the codec represents 3.1.1 CONNACK return codes and
//! SUBACK return codes with the equivalent MQTT 5 values (see
//! [`v311_connack_return_code`]).

use super::packet::kind;

/// Success (CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, AUTH).
pub const SUCCESS: u8 = 0x00;
/// Normal disconnection (DISCONNECT).
pub const NORMAL_DISCONNECTION: u8 = 0x00;
/// Granted QoS 0 (SUBACK).
pub const GRANTED_QOS_0: u8 = 0x00;
/// Granted QoS 1 (SUBACK).
pub const GRANTED_QOS_1: u8 = 0x01;
/// Granted QoS 2 (SUBACK).
pub const GRANTED_QOS_2: u8 = 0x02;
/// Disconnect with Will Message (DISCONNECT).
pub const DISCONNECT_WITH_WILL_MESSAGE: u8 = 0x04;
/// No matching subscribers (PUBACK, PUBREC).
pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
/// No subscription existed (UNSUBACK).
pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
/// Continue authentication (AUTH).
pub const CONTINUE_AUTHENTICATION: u8 = 0x18;
/// Re-authenticate (AUTH).
pub const RE_AUTHENTICATE: u8 = 0x19;
/// Unspecified error.
pub const UNSPECIFIED_ERROR: u8 = 0x80;
/// Malformed Packet.
pub const MALFORMED_PACKET: u8 = 0x81;
/// Protocol Error.
pub const PROTOCOL_ERROR: u8 = 0x82;
/// Implementation specific error.
pub const IMPLEMENTATION_SPECIFIC_ERROR: u8 = 0x83;
/// Unsupported Protocol Version.
pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
/// Client Identifier not valid.
pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
/// Bad User Name or Password.
pub const BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
/// Not authorized.
pub const NOT_AUTHORIZED: u8 = 0x87;
/// Server unavailable.
pub const SERVER_UNAVAILABLE: u8 = 0x88;
/// Server busy.
pub const SERVER_BUSY: u8 = 0x89;
/// Banned.
pub const BANNED: u8 = 0x8A;
/// Server shutting down.
pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
/// Bad authentication method.
pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
/// Keep Alive timeout.
pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
/// Session taken over.
pub const SESSION_TAKEN_OVER: u8 = 0x8E;
/// Topic Filter invalid.
pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
/// Topic Name invalid.
pub const TOPIC_NAME_INVALID: u8 = 0x90;
/// Packet Identifier in use.
pub const PACKET_IDENTIFIER_IN_USE: u8 = 0x91;
/// Packet Identifier not found.
pub const PACKET_IDENTIFIER_NOT_FOUND: u8 = 0x92;
/// Receive Maximum exceeded.
pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
/// Topic Alias invalid.
pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
/// Packet too large.
pub const PACKET_TOO_LARGE: u8 = 0x95;
/// Message rate too high.
pub const MESSAGE_RATE_TOO_HIGH: u8 = 0x96;
/// Quota exceeded.
pub const QUOTA_EXCEEDED: u8 = 0x97;
/// Administrative action.
pub const ADMINISTRATIVE_ACTION: u8 = 0x98;
/// Payload format invalid.
pub const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
/// Retain not supported.
pub const RETAIN_NOT_SUPPORTED: u8 = 0x9A;
/// QoS not supported.
pub const QOS_NOT_SUPPORTED: u8 = 0x9B;
/// Use another server.
pub const USE_ANOTHER_SERVER: u8 = 0x9C;
/// Server moved.
pub const SERVER_MOVED: u8 = 0x9D;
/// Shared Subscriptions not supported.
pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0x9E;
/// Connection rate exceeded.
pub const CONNECTION_RATE_EXCEEDED: u8 = 0x9F;
/// Maximum connect time.
pub const MAXIMUM_CONNECT_TIME: u8 = 0xA0;
/// Subscription Identifiers not supported.
pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: u8 = 0xA1;
/// Wildcard Subscriptions not supported.
pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0xA2;

/// Whether `code` is one of the reason codes MQTT 5 lists for packet type `packet_kind`.
pub(super) fn valid_for(packet_kind: u8, code: u8) -> bool {
    let allowed: &[u8] = match packet_kind {
        kind::CONNACK => &[
            SUCCESS,
            UNSPECIFIED_ERROR,
            MALFORMED_PACKET,
            PROTOCOL_ERROR,
            IMPLEMENTATION_SPECIFIC_ERROR,
            UNSUPPORTED_PROTOCOL_VERSION,
            CLIENT_IDENTIFIER_NOT_VALID,
            BAD_USER_NAME_OR_PASSWORD,
            NOT_AUTHORIZED,
            SERVER_UNAVAILABLE,
            SERVER_BUSY,
            BANNED,
            BAD_AUTHENTICATION_METHOD,
            TOPIC_NAME_INVALID,
            PACKET_TOO_LARGE,
            QUOTA_EXCEEDED,
            PAYLOAD_FORMAT_INVALID,
            RETAIN_NOT_SUPPORTED,
            QOS_NOT_SUPPORTED,
            USE_ANOTHER_SERVER,
            SERVER_MOVED,
            CONNECTION_RATE_EXCEEDED,
        ],
        kind::PUBACK | kind::PUBREC => &[
            SUCCESS,
            NO_MATCHING_SUBSCRIBERS,
            UNSPECIFIED_ERROR,
            IMPLEMENTATION_SPECIFIC_ERROR,
            NOT_AUTHORIZED,
            TOPIC_NAME_INVALID,
            PACKET_IDENTIFIER_IN_USE,
            QUOTA_EXCEEDED,
            PAYLOAD_FORMAT_INVALID,
        ],
        kind::PUBREL | kind::PUBCOMP => &[SUCCESS, PACKET_IDENTIFIER_NOT_FOUND],
        kind::SUBACK => &[
            GRANTED_QOS_0,
            GRANTED_QOS_1,
            GRANTED_QOS_2,
            UNSPECIFIED_ERROR,
            IMPLEMENTATION_SPECIFIC_ERROR,
            NOT_AUTHORIZED,
            TOPIC_FILTER_INVALID,
            PACKET_IDENTIFIER_IN_USE,
            QUOTA_EXCEEDED,
            SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
            SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
            WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
        ],
        kind::UNSUBACK => &[
            SUCCESS,
            NO_SUBSCRIPTION_EXISTED,
            UNSPECIFIED_ERROR,
            IMPLEMENTATION_SPECIFIC_ERROR,
            NOT_AUTHORIZED,
            TOPIC_FILTER_INVALID,
            PACKET_IDENTIFIER_IN_USE,
        ],
        kind::DISCONNECT => &[
            NORMAL_DISCONNECTION,
            DISCONNECT_WITH_WILL_MESSAGE,
            UNSPECIFIED_ERROR,
            MALFORMED_PACKET,
            PROTOCOL_ERROR,
            IMPLEMENTATION_SPECIFIC_ERROR,
            NOT_AUTHORIZED,
            SERVER_BUSY,
            SERVER_SHUTTING_DOWN,
            KEEP_ALIVE_TIMEOUT,
            SESSION_TAKEN_OVER,
            TOPIC_FILTER_INVALID,
            TOPIC_NAME_INVALID,
            RECEIVE_MAXIMUM_EXCEEDED,
            TOPIC_ALIAS_INVALID,
            PACKET_TOO_LARGE,
            MESSAGE_RATE_TOO_HIGH,
            QUOTA_EXCEEDED,
            ADMINISTRATIVE_ACTION,
            PAYLOAD_FORMAT_INVALID,
            RETAIN_NOT_SUPPORTED,
            QOS_NOT_SUPPORTED,
            USE_ANOTHER_SERVER,
            SERVER_MOVED,
            SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
            CONNECTION_RATE_EXCEEDED,
            MAXIMUM_CONNECT_TIME,
            SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
            WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
        ],
        kind::AUTH => &[SUCCESS, CONTINUE_AUTHENTICATION, RE_AUTHENTICATE],
        _ => &[],
    };
    allowed.contains(&code)
}

/// Maps an MQTT 5 CONNACK reason code to the MQTT 3.1.1 CONNACK return code (§3.2.2.3).
///
/// | MQTT 5 reason code                                   | 3.1.1 return code                  |
/// |------------------------------------------------------|------------------------------------|
/// | 0x00 Success                                         | 0 Connection Accepted              |
/// | 0x84 Unsupported Protocol Version                    | 1 Unacceptable protocol version    |
/// | 0x85 Client Identifier not valid                     | 2 Identifier rejected              |
/// | 0x86 Bad User Name or Password                       | 4 Bad user name or password        |
/// | 0x87 Not authorized, 0x8C Bad authentication method  | 5 Not authorized                   |
/// | any other code (0x88 Server unavailable, 0x89 Server busy, 0x8A Banned, …)   | 3 Server unavailable |
///
/// 3.1.1 has no generic failure code, so "server unavailable" is the closest answer that
/// still tells the client not to retry immediately with the same credentials.
pub fn v311_connack_return_code(reason: u8) -> u8 {
    match reason {
        SUCCESS => 0,
        UNSUPPORTED_PROTOCOL_VERSION => 1,
        CLIENT_IDENTIFIER_NOT_VALID => 2,
        BAD_USER_NAME_OR_PASSWORD => 4,
        NOT_AUTHORIZED | BAD_AUTHENTICATION_METHOD => 5,
        _ => 3,
    }
}

/// Inverse of [`v311_connack_return_code`] for decoding; `None` for return codes 3.1.1
/// reserves (6-255).
pub(super) fn from_v311_connack(code: u8) -> Option<u8> {
    Some(match code {
        0 => SUCCESS,
        1 => UNSUPPORTED_PROTOCOL_VERSION,
        2 => CLIENT_IDENTIFIER_NOT_VALID,
        3 => SERVER_UNAVAILABLE,
        4 => BAD_USER_NAME_OR_PASSWORD,
        5 => NOT_AUTHORIZED,
        _ => return None,
    })
}

/// Maps an MQTT 5 SUBACK reason code to the 3.1.1 return code (0, 1, 2 or 0x80 Failure).
pub(super) fn v311_suback_code(code: u8) -> Option<u8> {
    match code {
        GRANTED_QOS_0 | GRANTED_QOS_1 | GRANTED_QOS_2 => Some(code),
        c if valid_for(kind::SUBACK, c) => Some(UNSPECIFIED_ERROR),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connack_v311_table_round_trips_for_representative_codes() {
        for code in 0..=5u8 {
            let v5 = from_v311_connack(code).unwrap();
            assert_eq!(v311_connack_return_code(v5), code);
        }
        assert_eq!(from_v311_connack(6), None);
        assert_eq!(v311_connack_return_code(SERVER_BUSY), 3);
        assert_eq!(v311_connack_return_code(BANNED), 3);
        assert_eq!(v311_connack_return_code(BAD_AUTHENTICATION_METHOD), 5);
        assert_eq!(v311_connack_return_code(MALFORMED_PACKET), 3);
    }

    #[test]
    fn suback_v311_failures_collapse_to_0x80() {
        assert_eq!(v311_suback_code(GRANTED_QOS_2), Some(2));
        assert_eq!(v311_suback_code(NOT_AUTHORIZED), Some(0x80));
        assert_eq!(v311_suback_code(0x03), None);
    }

    #[test]
    fn reason_sets_follow_mqtt5_tables() {
        assert!(valid_for(kind::PUBACK, NO_MATCHING_SUBSCRIBERS));
        assert!(!valid_for(kind::PUBREL, NO_MATCHING_SUBSCRIBERS));
        assert!(valid_for(kind::DISCONNECT, DISCONNECT_WITH_WILL_MESSAGE));
        assert!(!valid_for(kind::CONNACK, DISCONNECT_WITH_WILL_MESSAGE));
        assert!(valid_for(kind::AUTH, RE_AUTHENTICATE));
        assert!(!valid_for(kind::PINGREQ, SUCCESS));
    }
}
