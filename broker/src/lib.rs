//! Tributary: a Kafka-native MQTT broker. Every MQTT message is a Kafka record; broker
//! processes keep no state of their own beyond caches rebuilt from Kafka.
//!
//! The modules are private and layered (`tests/module_layers.rs` holds the layers; docs/design.md
//! draws them). What the binary, the operator, the load tool and the tests use is exported here:
//! the wire format ([`codec`]), the configuration contract ([`config`]), the topic algebra
//! ([`topic`]), and the items below.

#![warn(unreachable_pub)]

pub mod codec;
pub mod config;
pub mod topic;

mod acl;
mod admin;
mod admission;
mod auth;
mod broker;
mod client;
mod connection;
mod delivery;
mod kafka;
mod mapping;
mod message;
mod metrics;
mod process;
mod publisher;
mod read_budget;
mod rebalance;
mod registry;
mod reload;
mod retained;
mod server;
mod session;
mod shutdown;
mod telemetry;
mod tls;
mod ws;

pub use auth::{hash_password, AuthError};
pub use broker::{Broker, StartError};
pub use client::{serve, Peer, VerifiedCertificate};
/// The subscription index and a client's queue, exported for the micro-benchmarks
/// (`benches/subscriptions.rs`).
pub use delivery::{mailbox::Mailbox, router::Router, router::Subscriber};
pub use kafka::admin::{ensure_topics, AdminError};
pub use kafka::log::Log;
pub use kafka::memory::{Logged, MemoryLog};
pub use mapping::TopicMapping;
pub use message::{Message, MessageProperties, HEADER_PUBLISH_ID};
pub use metrics::Metrics;
pub use process::{load, run, RunError};
pub use publisher::{Placement, Publisher};
pub use reload::{classify, Change, POLL_INTERVAL as CONFIG_POLL_INTERVAL};
/// The records of the sessions topic (claims, states, heartbeats), for tools that write them.
pub use session::record as session_record;
pub use shutdown::{channel as shutdown_channel, Shutdown, ShutdownTrigger};
pub use telemetry::{Telemetry, TelemetryError};
