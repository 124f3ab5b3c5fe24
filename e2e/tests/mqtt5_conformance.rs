//! MQTT 5 conformance defects found by independent test suites (issue 10), each checked with a
//! real client where one can send the packet (rumqttc v5, paho-mqtt, mosquitto clients) and with
//! the raw client (the broker's own codec) where none can.

use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, DisconnectReasonCode, LastWillProperties, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use std::process::Command;
use std::time::Duration;
use tributary_broker::codec::{Connect, Packet, Properties, ProtocolVersion, QoS as RawQoS};
use tributary_e2e::kafka::read_topic;
use tributary_e2e::mqtt5::{filter, options5, Client5};
use tributary_e2e::procs::{password_line, BrokerOptions};
use tributary_e2e::raw::RawClient;
use tributary_e2e::{workspace_root, BrokerProcess, KafkaServer};

const T: Duration = Duration::from_secs(20);

/// What paho-mqtt (MQTT 5) got as CONNACK: reason code and Reason String.
fn paho_connack(port: u16, client_id: &str, args: &[&str]) -> (Option<u64>, Option<String>) {
    let script = workspace_root().join("e2e/paho/connack.py");
    let out = Command::new("python3")
        .arg(script)
        .args([&port.to_string(), client_id])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("paho output {stdout:?} ({e}); stderr {}", String::from_utf8_lossy(&out.stderr)));
    (v["reason"].as_u64(), v["reason_string"].as_str().map(str::to_owned))
}

/// MQTT-3.1.2-5 / 4.1: a session stored with an expiry is resumed by a CONNECT with Clean Start 0
/// and no Session Expiry Interval: session present, the messages queued meanwhile delivered
/// (with their remaining expiry, expired ones not at all), and the session ends with that
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_with_session_expiry_zero_delivers_what_was_queued() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let session = |expiry: Option<u32>| {
        let mut o = options5(b.port, "resume0");
        o.set_clean_start(expiry.is_some());
        o.set_session_expiry_interval(expiry);
        o
    };
    let mut sub = Client5::connect(session(Some(300))).await;
    sub.subscribe(filter("away/#", QoS::AtLeastOnce, false, false), None).await;
    sub.client.disconnect().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(sub.closed(T).await);

    let mut publisher = Client5::connect(options5(b.port, "resume0-pub")).await;
    let expiring = |secs| PublishProperties { message_expiry_interval: Some(secs), ..Default::default() };
    for (payload, expiry) in [("gone", Some(1)), ("kept", Some(60)), ("plain", None)] {
        let props = expiry.map(expiring).unwrap_or_default();
        publisher.client.publish_with_properties("away/t", QoS::AtLeastOnce, false, payload, props).await.unwrap();
        publisher.puback().await;
    }
    // Long enough for the 1 s message to expire while queued, and for the others to age.
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let mut resumed = Client5::connect(session(None)).await;
    assert!(resumed.connack.session_present, "the stored session is resumed");
    let kept = resumed.publish_received(T).await;
    assert_eq!(&kept.payload[..], b"kept", "the expired message is not delivered");
    let left = kept.properties.and_then(|p| p.message_expiry_interval);
    assert!(left.is_some_and(|s| (55..=58).contains(&s)), "remaining expiry sent, got {left:?}");
    let plain = resumed.publish_received(T).await;
    assert_eq!(&plain.payload[..], b"plain");
    resumed.client.disconnect().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(resumed.closed(T).await);

    // The session ended with that connection.
    let again = Client5::connect(session(None)).await;
    assert!(!again.connack.session_present, "a session with expiry 0 ends with its connection");
}

/// MQTT-3.1.2-2: a protocol level the broker does not speak is refused with "unsupported
/// protocol version" in a CONNACK the client can read, then the connection is closed: a level
/// above 5 in the MQTT 5 format (0x84), MQTT 3.1 (level 3, mosquitto's `-V mqttv31`) in the
/// 3.1.1 format (return code 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_protocol_levels_get_unsupported_protocol_version() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let addr = format!("127.0.0.1:{}", b.port);
    let level6: &[u8] = &[0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 6, 0x02, 0, 60, 0, 0, 1, b'x'];
    let (connack, closed) = tokio::task::spawn_blocking(move || {
        let mut c = RawClient::dial(&addr, ProtocolVersion::V5).unwrap_or_else(|e| panic!("{e}"));
        c.send_bytes(level6).unwrap_or_else(|e| panic!("{e}"));
        let connack = c.recv().unwrap_or_else(|e| panic!("no CONNACK for level 6: {e}"));
        (connack, c.closed())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    match connack {
        Packet::ConnAck(a) => assert_eq!((a.reason, a.session_present), (0x84, false)),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert!(closed, "the connection is closed after the refusal");

    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &b.port.to_string(), "-V", "mqttv31", "-t", "v/t", "-m", "x"])
        .output()
        .unwrap_or_else(|e| panic!("mosquitto_pub: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!out.status.success() && stderr.contains("unacceptable protocol version"), "{stderr}");
}

/// MQTT-3.1.2-18/19: in MQTT 5 a password without a user name is legal. It names no account of
/// the password file, so it is checked like a client without credentials: admitted where
/// anonymous access is, refused with 0x86 where it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_without_user_name_is_authenticated_not_refused_for_its_shape() {
    let kafka = KafkaServer::start();
    let open = BrokerProcess::start(&kafka);
    let mut o = options5(open.port, "pw-only");
    // rumqttc leaves an empty user name out of the CONNECT: only the password flag is set.
    o.set_credentials("", "token");
    let c = Client5::try_connect(o).await;
    assert_eq!(c.connack.code, ConnectReturnCode::Success, "anonymous access is allowed");

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let passwords = dir.path().join("passwords");
    std::fs::write(&passwords, format!("{}\n", password_line("dev", "not-the-token")))
        .unwrap_or_else(|e| panic!("{e}"));
    let opts = BrokerOptions {
        authentication: Some(format!("{{ allowAnonymous: false, passwordFile: '{}' }}", passwords.display())),
        ..Default::default()
    };
    let closed = BrokerProcess::start_with(&kafka, &opts);
    let mut o = options5(closed.port, "pw-only");
    o.set_credentials("", "token");
    let c = Client5::try_connect(o).await;
    assert_eq!(c.connack.code, ConnectReturnCode::BadUserNamePassword);
}

/// MQTT-3.3.4-6: a client's PUBLISH must not carry a Subscription Identifier; MQTT-3.3.2-14: a
/// Response Topic must not hold wildcards (in a PUBLISH or a Will). Both are protocol errors:
/// DISCONNECT 0x82 (CONNACK 0x82 for the Will), with a Reason String saying which rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifiers_and_wildcard_response_topics_from_clients_are_protocol_errors() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let cases = [
        ("sub-id", PublishProperties { subscription_identifiers: vec![1], ..Default::default() }, "MQTT-3.3.4-6"),
        (
            "resp-topic",
            PublishProperties { response_topic: Some("replies/#".into()), ..Default::default() },
            "MQTT-3.3.2-14",
        ),
    ];
    for (id, props, rule) in cases {
        let mut c = Client5::connect(options5(b.port, id)).await;
        c.client.publish_with_properties("pe/t", QoS::AtLeastOnce, false, "x", props).await.unwrap();
        let d = c.disconnect_packet(T).await;
        assert_eq!(d.reason_code, DisconnectReasonCode::ProtocolError, "{id}");
        let why = d.properties.and_then(|p| p.reason_string).unwrap_or_default();
        assert!(why.contains(rule), "{id}: reason string {why:?}");
    }
    let mut o = options5(b.port, "will-resp");
    let props = LastWillProperties {
        delay_interval: None,
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: Some("replies/+".into()),
        correlation_data: None,
        user_properties: Vec::new(),
    };
    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new("w/t", "gone", QoS::AtMostOnce, false, Some(props)));
    assert_eq!(Client5::try_connect(o).await.connack.code, ConnectReturnCode::ProtocolError);
}

/// MQTT-4.12.0-1: an Authentication Method the broker does not support gets CONNACK 0x8C and
/// no session: nothing is written to the sessions topic for that client id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_authentication_method_is_refused_before_any_session() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let mut o = options5(b.port, "auth-method-r");
    o.set_authentication_method(Some("SCRAM-SHA-256".into()));
    assert_eq!(Client5::try_connect(o).await.connack.code, ConnectReturnCode::BadAuthenticationMethod);
    let (code, why) = paho_connack(b.port, "auth-method-p", &["--auth-method", "SCRAM-SHA-1"]);
    assert_eq!(code, Some(0x8C));
    assert!(why.is_some_and(|w| w.contains("SCRAM-SHA-1")), "the Reason String names the method");

    // A client connecting afterwards: once its claim is in the topic, so would the others' be.
    let _marker = Client5::connect(options5(b.port, "auth-marker")).await;
    let bootstrap = kafka.bootstrap.clone();
    let records = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "mqtt-sessions", usize::MAX, Duration::from_secs(5))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<String> = records.iter().map(|r| r.key_str()).collect();
    assert!(keys.iter().any(|k| k == "auth-marker#claim"), "{keys:?}");
    assert!(!keys.iter().any(|k| k.starts_with("auth-method")), "refused clients left records: {keys:?}");
}

/// MQTT-3.2.2-19/20, 3.1.2-25: a packet whose Reason String would make it larger than the
/// client's Maximum Packet Size is sent without it, not dropped (CONNACK with paho-mqtt,
/// DISCONNECT with rumqttc).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reason_strings_are_left_out_rather_than_packets_dropped() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let (code, why) = paho_connack(b.port, "small-connack", &["--auth-method", "SCRAM-SHA-1", "--max-packet", "16"]);
    assert_eq!((code, why), (Some(0x8C), None), "CONNACK sent without its Reason String");

    // A successful CONNACK fits in 48 bytes; the DISCONNECT with its Reason String would not.
    let mut o = options5(b.port, "small-disconnect");
    o.set_max_packet_size(Some(48));
    let mut c = Client5::connect(o).await;
    let props = PublishProperties { subscription_identifiers: vec![1], ..Default::default() };
    c.client.publish_with_properties("pe/t", QoS::AtLeastOnce, false, "x", props).await.unwrap();
    let d = c.disconnect_packet(T).await;
    assert_eq!(d.reason_code, DisconnectReasonCode::ProtocolError);
    assert_eq!(d.properties.and_then(|p| p.reason_string), None);
}

/// A raw MQTT 5 subscriber to `filter` accepting `aliases` topic aliases.
fn alias_subscriber(addr: &str, id: &str, aliases: u16, filter: &str) -> RawClient {
    let mut c = RawClient::dial(addr, ProtocolVersion::V5).unwrap_or_else(|e| panic!("{e}"));
    let properties = Properties { topic_alias_maximum: Some(aliases), ..Properties::default() };
    let connect = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 0,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
        properties,
    };
    c.send(&Packet::Connect(connect)).unwrap_or_else(|e| panic!("{e}"));
    match c.recv() {
        Ok(Packet::ConnAck(a)) if a.reason == 0 => {}
        other => panic!("expected CONNACK, got {other:?}"),
    }
    c.subscribe(filter, RawQoS::AtMostOnce).unwrap_or_else(|e| panic!("{e}"));
    c
}

/// Reads `n` PUBLISHes, resolving topic aliases as a client must; returns (topic, payload)
/// pairs and the bytes the broker sent for them.
fn read_aliased(mut c: RawClient, n: usize) -> (Vec<(String, String)>, usize) {
    let start = c.received;
    let mut aliases = std::collections::HashMap::new();
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let Packet::Publish(p) = c.recv().unwrap_or_else(|e| panic!("after {} messages: {e}", got.len())) else {
            continue;
        };
        let topic = match (p.topic.is_empty(), p.properties.topic_alias) {
            (false, Some(alias)) => {
                aliases.insert(alias, p.topic.clone());
                p.topic
            }
            (true, Some(alias)) => aliases.get(&alias).cloned().unwrap_or_else(|| panic!("unknown alias {alias}")),
            (_, None) => p.topic,
        };
        got.push((topic, String::from_utf8_lossy(&p.payload).into_owned()));
    }
    (got, c.received - start)
}

/// Server-to-client topic aliases: a client that allows them gets repeated topics as an empty
/// name plus an alias (at most its maximum, least recently used replaced), and reads the right
/// topics — rumqttc v5 resolving them itself, and a raw client counting the bytes saved against
/// one that allows none. The figures in BENCHMARKS.md come from this test (`--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_aliases_name_repeated_topics_and_save_bytes() {
    const MESSAGES: usize = 1000;
    const TOPICS: usize = 10;
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    // rumqttc v5 with fewer aliases than topics, so replacements happen. Its event loop checks
    // every alias (an unknown one is a protocol error there) but hands the PUBLISH to the
    // application before it fills the topic in (0.25), so the test resolves what it reports.
    // (libmosquitto and paho-mqtt do not take server aliases: they ask for none by default.)
    let mut o = options5(b.port, "alias-rumqttc");
    o.set_topic_alias_max(Some(4));
    let mut real = Client5::connect(o).await;
    real.subscribe(filter("fleet/#", QoS::AtMostOnce, false, false), None).await;
    let addr = b.addr();
    let (none, sixteen) = tokio::task::spawn_blocking(move || {
        (alias_subscriber(&addr, "alias-none", 0, "fleet/#"), alias_subscriber(&addr, "alias-16", 16, "fleet/#"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let plain = tokio::task::spawn_blocking(move || read_aliased(none, MESSAGES));
    let aliased = tokio::task::spawn_blocking(move || read_aliased(sixteen, MESSAGES));

    let mut publisher = Client5::connect(options5(b.port, "alias-pub")).await;
    // Device-fleet traffic: a few topics, mostly repeating, small JSON payloads.
    for i in 0..MESSAGES {
        let topic = format!("fleet/site-07/device-{:04}/telemetry", (i * 7) % TOPICS);
        let payload = format!("{{\"seq\":{i},\"t\":21.5,\"topic\":\"{topic}\"}}");
        publisher.client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
        publisher.puback().await;
    }
    let (plain, plain_bytes) = plain.await.unwrap_or_else(|e| panic!("{e}"));
    let (aliased, aliased_bytes) = aliased.await.unwrap_or_else(|e| panic!("{e}"));
    for (topic, payload) in plain.iter().chain(&aliased) {
        assert!(payload.contains(&format!("\"topic\":\"{topic}\"")), "{topic} carried {payload}");
    }
    let mut known = std::collections::HashMap::new();
    let mut announced = 0;
    for _ in 0..MESSAGES {
        let p = real.publish_received(T).await;
        let alias = p.properties.and_then(|p| p.topic_alias);
        let topic = match (String::from_utf8_lossy(&p.topic).into_owned(), alias) {
            (t, Some(a)) if t.is_empty() => known.get(&a).cloned().unwrap_or_else(|| panic!("unknown alias {a}")),
            (t, Some(a)) => {
                assert!(a <= 4, "alias {a} above the client's maximum");
                announced += 1;
                known.insert(a, t.clone());
                t
            }
            (t, None) => t,
        };
        let payload = String::from_utf8_lossy(&p.payload);
        assert!(payload.contains(&format!("\"topic\":\"{topic}\"")), "rumqttc: {topic} carried {payload}");
    }
    assert!(announced > 4, "aliases were replaced ({announced} announcements)");
    let saved = plain_bytes - aliased_bytes;
    println!(
        "topic aliases: {MESSAGES} messages over {TOPICS} topics of {} bytes: {plain_bytes} bytes without aliases, \
         {aliased_bytes} with 16 ({saved} saved, {:.1}%, {:.1} bytes per message)",
        "fleet/site-07/device-0000/telemetry".len(),
        100.0 * saved as f64 / plain_bytes as f64,
        saved as f64 / MESSAGES as f64
    );
    assert!(aliased_bytes < plain_bytes * 3 / 4, "aliases save at least a quarter here");
}
