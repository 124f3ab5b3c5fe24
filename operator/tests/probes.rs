//! Kafka reachability probe and the pods' metrics scraping, against local sockets.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tributary_operator::kafka::check_bootstrap;
use tributary_operator::metrics::{parse_connections, scrape_connections, ScrapeError};

#[test]
fn parses_the_connections_gauge() {
    let body = "# HELP tributary_connections Open MQTT connections.\n\
                # TYPE tributary_connections gauge\n\
                tributary_connections 42\n\
                tributary_connections_total 9000\n\
                other_metric 1\n";
    assert_eq!(parse_connections(body), Some(42));
    let labelled = "tributary_connections{listener=\"mqtt\"} 3\ntributary_connections{listener=\"wss\"} 4.0\n";
    assert_eq!(parse_connections(labelled), Some(7));
    assert_eq!(parse_connections("tributary_connections_total 5\n"), None);
    assert_eq!(parse_connections("tributary_connections NaN\n"), None);
    assert_eq!(parse_connections(""), None);
}

/// Serves one HTTP response on a random local port.
async fn http_once(response: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        if let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /metrics HTTP/1.0\r\n"));
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    port
}

#[tokio::test]
async fn scrapes_a_pod() {
    let port = http_once("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\ntributary_connections 17\n").await;
    let n = scrape_connections("127.0.0.1", port, Duration::from_secs(2)).await.expect("scrape");
    assert_eq!(n, 17);

    let port = http_once("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
    let e = scrape_connections("127.0.0.1", port, Duration::from_secs(2)).await;
    assert!(matches!(e, Err(ScrapeError::BadResponse(_))), "{e:?}");

    let port = http_once("HTTP/1.1 200 OK\r\n\r\nsomething_else 1\n").await;
    let e = scrape_connections("127.0.0.1", port, Duration::from_secs(2)).await;
    assert!(matches!(e, Err(ScrapeError::BadResponse(_))), "{e:?}");
}

#[tokio::test]
async fn scrape_times_out_on_a_silent_pod() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let e = scrape_connections("127.0.0.1", port, Duration::from_millis(200)).await;
    assert!(matches!(e, Err(ScrapeError::Timeout)), "{e:?}");
    drop(listener);
}

#[tokio::test]
async fn kafka_reachability() {
    let up = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let up_addr = up.local_addr().expect("addr").to_string();
    let down_addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let t = Duration::from_secs(2);

    let all = check_bootstrap(&up_addr, t).await;
    assert!(all.reachable);
    assert!(all.message.contains(&up_addr));
    assert_eq!(all.topics_ready, None, "a reachability probe says nothing about topics");

    let some = check_bootstrap(&format!("{down_addr}, {up_addr}"), t).await;
    assert!(some.reachable);
    assert!(some.message.contains(&format!("unreachable: {down_addr}")), "{}", some.message);

    let none = check_bootstrap(&format!("{down_addr},not-a-server"), t).await;
    assert!(!none.reachable);
    assert!(none.message.contains("no bootstrap server reachable"));
    assert!(none.message.contains("not-a-server (expected host:port)"), "{}", none.message);
}
