//! The fleet demo (README "Demo"): trucks driving between Italian cities publish their
//! positions over MQTT, a Kafka stream job counts them by heading, and a browser page draws
//! them from MQTT over WebSocket.
//!
//! This library holds what the binaries share and what their tests check: geometry, the road
//! graph shipped in `web/roads.geojson`, the trucks' driving model, their report messages and
//! the stream job's window.

pub mod geo;
pub mod plate;
pub mod report;
pub mod rng;
pub mod roads;
pub mod truck;
pub mod window;
