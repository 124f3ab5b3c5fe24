//! Support for Tributary's end-to-end tests and tools: a real Kafka-protocol server (tansu) and
//! real broker processes on loopback, started per test and killed when dropped.

pub mod certs;
pub mod kafka;
pub mod mqtt;
pub mod mqtt5;
pub mod procs;
pub mod raw;
pub mod sim;

pub use procs::{BrokerProcess, KafkaServer};

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `kafka.properties` entries (YAML flow mapping) for tansu, which answers a waiting fetch only
/// at its timeout where Kafka answers as soon as a record arrives: tests shorten the wait
/// instead of the product's default being tuned to the test server.
pub const TANSU_FETCH: &str = "fetch.wait.max.ms: '10'";

/// The workspace root (where `.tools/` and `target/` live).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// Waits until something accepts TCP connections on `addr`, or panics after `timeout`.
pub fn wait_for_port(addr: &str, timeout: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(start.elapsed() < timeout, "nothing listening on {addr} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
