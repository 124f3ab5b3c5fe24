//! Tributary: a Kafka-native MQTT broker. Every MQTT message is a Kafka record; broker
//! processes keep no state of their own beyond caches rebuilt from Kafka.

pub mod acl;
pub mod admin;
pub mod auth;
pub mod broker;
pub mod client;
pub mod codec;
pub mod config;
pub mod connection;
pub mod delivery;
pub mod kafka;
pub mod mapping;
pub mod message;
pub mod metrics;
pub mod publisher;
pub mod registry;
pub mod reload;
pub mod retained;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod tls;
pub mod topic;
