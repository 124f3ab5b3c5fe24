//! Reads the `tributary_connections` gauge from a broker pod's admin `/metrics` endpoint.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::desired::hpa::CONNECTIONS_METRIC;

/// Largest metrics response read, in bytes.
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;

/// Why a pod's metrics could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Connecting, writing or reading failed.
    #[error("metrics request failed: {0}")]
    Io(#[from] std::io::Error),
    /// The pod did not answer in time.
    #[error("metrics request timed out")]
    Timeout,
    /// The answer was not `200 OK` or had no `tributary_connections` sample.
    #[error("metrics response unusable: {0}")]
    BadResponse(String),
}

/// Sums every sample of `tributary_connections` (any labels) in Prometheus text format.
pub fn parse_connections(body: &str) -> Option<i64> {
    let mut total: Option<f64> = None;
    for line in body.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(CONNECTIONS_METRIC) else {
            continue;
        };
        let rest = if let Some(labelled) = rest.strip_prefix('{') {
            match labelled.split_once('}') {
                Some((_, after)) => after,
                None => continue,
            }
        } else if rest.starts_with(' ') || rest.starts_with('\t') {
            rest
        } else {
            // Another metric sharing the prefix, e.g. tributary_connections_total.
            continue;
        };
        if let Some(Ok(value)) = rest.split_whitespace().next().map(str::parse::<f64>) {
            if value.is_finite() {
                total = Some(total.unwrap_or(0.0) + value);
            }
        }
    }
    total.map(|t| t.round() as i64)
}

/// GETs `http://ip:port/metrics` and returns the pod's connection count.
pub async fn scrape_connections(ip: &str, port: u16, timeout: Duration) -> Result<i64, ScrapeError> {
    let fetch = async {
        let mut stream = TcpStream::connect((ip, port)).await?;
        let request =
            format!("GET /metrics HTTP/1.0\r\nHost: {ip}:{port}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(timeout, fetch).await.map_err(|_| ScrapeError::Timeout)??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| ScrapeError::BadResponse("no HTTP header terminator".to_string()))?;
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(ScrapeError::BadResponse(status_line.to_string()));
    }
    parse_connections(body).ok_or_else(|| ScrapeError::BadResponse(format!("no {CONNECTIONS_METRIC} sample")))
}
