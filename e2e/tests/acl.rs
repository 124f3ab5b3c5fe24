//! Access rules (`authorization`) with Debian's mosquitto clients: publishes, subscriptions and
//! Wills refused by first-match rules with a deny default, subscriptions overlapping a denied
//! subtree refused, and rule edits applied to a running broker.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tributary_e2e::procs::{password_line, BrokerOptions};
use tributary_e2e::{BrokerProcess, KafkaServer};

fn options(passwords: &Path, extra_rule: &str) -> BrokerOptions {
    BrokerOptions {
        authentication: Some(format!("{{ allowAnonymous: false, passwordFile: '{}' }}", passwords.display())),
        authorization: Some(format!(
            "{{ defaultEffect: deny, rules: [\
             {{ principal: 'user:admin', action: all, topic: '#', effect: allow }},\
             {{ principal: '*', action: subscribe, topic: 'devices/secret/#', effect: deny }},\
             {{ principal: '*', action: subscribe, topic: 'devices/#', effect: allow }},\
             {{ principal: 'client:dev-1', action: publish, topic: 'devices/dev-1/#', effect: allow }}{extra_rule} ] }}"
        )),
        ..Default::default()
    }
}

fn publish(port: u16, user: &str, client_id: &str, topic: &str, payload: &str) -> Output {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv5", "-q", "1", "-u", user, "-P", "pw"])
        .args(["-i", client_id, "-t", topic, "-m", payload])
        .output()
        .unwrap_or_else(|e| panic!("mosquitto_pub: {e}"))
}

/// The admin watching `devices/#` for one message.
fn watch_one(port: u16) -> Child {
    Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-u", "admin", "-P", "pw", "-i", "watcher"])
        .args(["-t", "devices/#", "-C", "1", "-W", "20", "-q", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("mosquitto_sub: {e}"))
}

fn first_message(child: Child) -> String {
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_refuse_publishes_subscriptions_and_wills_and_reload_live() {
    let kafka = KafkaServer::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let passwords = dir.path().join("passwords");
    // "pw" is the password of every test user.
    let lines = format!("{}\n{}\n", password_line("admin", "pw"), password_line("dev", "pw"));
    std::fs::write(&passwords, lines).unwrap_or_else(|e| panic!("{e}"));
    let b = BrokerProcess::start_with(&kafka, &options(&passwords, ""));

    // dev-1 may publish under devices/dev-1/ only: the watcher sees the allowed message first.
    let watcher = watch_one(b.port);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    publish(b.port, "dev", "dev-1", "devices/dev-2/status", "forged");
    let ok = publish(b.port, "dev", "dev-1", "devices/dev-1/status", "mine");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(first_message(watcher), "mine");

    // Subscriptions: within devices/ but not overlapping devices/secret/.
    let sub = |filter: &str| {
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &b.port.to_string(), "-u", "dev", "-P", "pw", "-t", filter])
            .args(["-C", "1", "-W", "3", "-V", "mqttv311"])
            .output()
            .unwrap_or_else(|e| panic!("mosquitto_sub: {e}"))
    };
    for denied in ["devices/#", "devices/secret/key", "other/#"] {
        let out = sub(denied);
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(stderr.contains("denied"), "{denied}: {stderr}");
    }
    let out = sub("devices/dev-1/+");
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!stderr.contains("denied"), "devices/dev-1/+ should be granted: {stderr}");

    // A Will on a topic the client may not publish to is refused at CONNECT.
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &b.port.to_string(), "-V", "mqttv5", "-u", "dev", "-P", "pw", "-i", "dev-1"])
        .args(["-t", "devices/dev-1/x", "-m", "x", "--will-topic", "devices/dev-2/status", "--will-payload", "gone"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains("not authorized"));
    let metrics = b.metrics();
    assert!(!metrics.contains("\ntributary_acl_denied_total 0\n"), "{metrics}");

    // An edited rule reaches the running broker.
    let extra = ", { principal: 'client:dev-1', action: publish, topic: 'devices/dev-2/#', effect: allow }";
    b.rewrite_config(&options(&passwords, extra));
    let start = Instant::now();
    loop {
        let watcher = watch_one(b.port);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        publish(b.port, "dev", "dev-1", "devices/dev-2/status", "now allowed");
        publish(b.port, "dev", "dev-1", "devices/dev-1/status", "marker");
        if first_message(watcher) == "now allowed" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the new rule was not applied");
    }
}
