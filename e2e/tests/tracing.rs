//! Tracing: a broker given `OTEL_EXPORTER_OTLP_ENDPOINT` posts its spans over OTLP/HTTP
//! (protobuf) to a receiver run here, and one asked for gRPC refuses to start naming the variable.
//! Which spans a sampler keeps, and that nothing is set up without an endpoint, are the unit
//! tests of `broker/src/telemetry.rs`.

use rumqttc::QoS;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tributary_e2e::mqtt::{options, Client};
use tributary_e2e::procs::{broker_bin, BrokerOptions};
use tributary_e2e::{eventually, free_port, BrokerProcess, KafkaServer};

const T: Duration = Duration::from_secs(20);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// A minimal OTLP/HTTP receiver on loopback: answers every request with 200 and keeps it.
#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    /// Listens on a free loopback port; returns the receiver and its base URL. The accepting
    /// thread ends with the test process.
    fn start() -> (Receiver, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
        let receiver = Receiver::default();
        let kept = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || kept.serve(stream));
            }
        });
        (receiver, url)
    }

    /// Serves the requests of one (keep-alive) connection until the client closes it.
    fn serve(&self, stream: TcpStream) {
        let Ok(mut out) = stream.try_clone() else { return };
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let (mut length, mut content_type) = (0usize, String::new());
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    match name.trim().to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        "content-type" => content_type = value.trim().to_owned(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            self.requests.lock().unwrap_or_else(|e| e.into_inner()).push(Request { path, content_type, body });
            let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
            if out.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether some request body holds `bytes` (protobuf strings are stored as they are).
    fn got(&self, bytes: &str) -> bool {
        self.requests().iter().any(|r| contains(&r.body, bytes.as_bytes()))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_connect_publish_delivery_and_catch_up_reach_an_otlp_http_receiver() {
    let (receiver, url) = Receiver::start();
    let kafka = KafkaServer::start();
    let opts = BrokerOptions {
        env: env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
            // Export every 100 ms instead of every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            // The delivery spans are at DEBUG.
            ("RUST_LOG", "info,tributary_broker::client::deliver=debug"),
        ]),
        ..Default::default()
    };
    let b = BrokerProcess::start_with(&kafka, &opts);

    // A persistent session subscribes and goes away; a QoS 1 message arrives meanwhile and is
    // read back from Kafka when the session resumes (the catch-up).
    let persistent = || {
        let mut o = options(b.port, "traced-sub");
        o.set_clean_session(false);
        o
    };
    let mut sub = Client::connect(persistent()).await;
    sub.subscribe("traced/#", QoS::AtLeastOnce).await;
    sub.client.disconnect().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(sub.closed(T).await);
    let publisher = Client::connect(options(b.port, "traced-pub")).await;
    publisher.client.publish("traced/a", QoS::AtLeastOnce, false, "one").await.unwrap_or_else(|e| panic!("{e}"));
    let mut sub = Client::connect(persistent()).await;
    assert!(sub.connack.session_present);
    let got = sub.publish_received(T).await;
    assert_eq!(&got.payload[..], b"one");

    let spans = ["mqtt.connect", "mqtt.session.open", "mqtt.publish", "mqtt.deliver", "mqtt.catchup"];
    eventually("the spans at the receiver", T, || spans.iter().all(|s| receiver.got(s)).then_some(())).await;
    let requests = receiver.requests();
    assert!(
        requests.iter().all(|r| r.path == "/v1/traces"),
        "{:?}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert!(requests.iter().all(|r| r.content_type == "application/x-protobuf"), "protobuf bodies");
    assert!(receiver.got("tributary-broker"), "the service name");
    for attribute in ["client_id", "traced-sub", "session_present", "traced/a", "kafka.offset"] {
        assert!(receiver.got(attribute), "attribute {attribute} exported");
    }
    sub.abort();
    drop(publisher);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_does_not_hold_the_exit_up() {
    // Accepts connections and never answers them.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            holder.lock().unwrap_or_else(|e| e.into_inner()).push(stream);
        }
    });
    let kafka = KafkaServer::start();
    let opts = BrokerOptions {
        env: env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &url),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            // Each export would wait a minute for its answer.
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000"),
        ]),
        ..Default::default()
    };
    let mut b = BrokerProcess::start_with(&kafka, &opts);
    let client = Client::connect(options(b.port, "traced-exit")).await;
    client.client.disconnect().await.unwrap_or_else(|e| panic!("{e}"));
    // An export of the connect span is under way, and will not be answered.
    eventually("an export request", T, || (!held.lock().unwrap_or_else(|e| e.into_inner()).is_empty()).then_some(()))
        .await;
    let started = Instant::now();
    b.send_term();
    assert!(b.exited_within(Duration::from_secs(20)), "the broker did not exit");
    let took = started.elapsed();
    println!("exit with an unresponsive collector: {took:?}");
    // The span flush is bounded at 5 s; the rest of the shutdown takes well under a second here.
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
}

#[test]
fn otlp_over_grpc_stops_the_broker_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("broker.yaml");
    let config = format!(
        "listeners:\n  - {{ name: mqtt, protocol: mqtt, address: '127.0.0.1:{}' }}\n\
         kafka: {{ bootstrapServers: '127.0.0.1:9' }}\n",
        free_port()
    );
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(broker_bin())
        .arg("--config")
        .arg(&path)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // A broker that started would wait for its (unreachable) Kafka: bounded.
    let deadline = Instant::now() + T;
    while child.try_wait().unwrap_or_else(|e| panic!("{e}")).is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the broker started with OTEL_EXPORTER_OTLP_PROTOCOL=grpc");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\""), "{stderr}");
    assert!(stderr.contains("use http/protobuf"), "{stderr}");
}
