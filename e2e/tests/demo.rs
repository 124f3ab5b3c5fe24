//! The fleet demo (README "Demo") end to end, small: tansu, two brokers with the demo's
//! mapping, passwords and access rules, 50 simulated trucks, the stream job and the web server;
//! the page in headless Chromium (e2e/browser/demo-test.mjs) shows moving markers and counts
//! updated by the stream job; the read-only UI identity cannot publish.
//! `DEMO_SCREENSHOT=path` keeps the page's screenshot (docs/demo.png is one).

use rumqttc::QoS;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tributary_e2e::mqtt::{options, Client};
use tributary_e2e::procs::{password_line, workspace_bin, BrokerOptions};
use tributary_e2e::{free_port, wait_for_port, workspace_root, BrokerProcess, KafkaServer, TANSU_FETCH};

const WAIT: Duration = Duration::from_secs(20);

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the demo binary `name` with `args` (and `env`).
fn demo_bin(name: &str, args: &[String], env: &[(&str, &str)]) -> Proc {
    let bin = workspace_bin(name);
    assert!(bin.exists(), "{} not found (run `cargo build --workspace --bins`)", bin.display());
    let quiet = std::env::var_os("E2E_LOG").is_none();
    let child = Command::new(&bin)
        .args(args)
        .envs(env.iter().copied())
        .stdout(if quiet { Stdio::null() } else { Stdio::inherit() })
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    Proc(child)
}

/// The demo's broker options: its two mappings, a WebSocket listener on `ws_port`, the
/// passwords in `passwords` and its rules (simulator publishes trucks, viewer reads the fleet).
fn demo_options(passwords: &Path, ws_port: u16) -> BrokerOptions {
    BrokerOptions {
        mappings: vec![
            ("fleet-trucks".into(), vec!["fleet/trucks/#".into()]),
            ("fleet-stats".into(), vec!["fleet/stats/#".into()]),
        ],
        extra_listeners: vec![format!("{{ name: ws, protocol: ws, address: '127.0.0.1:{ws_port}' }}")],
        authentication: Some(format!("{{ allowAnonymous: false, passwordFile: '{}' }}", passwords.display())),
        authorization: Some(
            "{ defaultEffect: deny, rules: [\
             { principal: 'user:simulator', action: publish, topic: 'fleet/trucks/#', effect: allow },\
             { principal: 'user:viewer', action: subscribe, topic: 'fleet/#', effect: allow } ] }"
                .into(),
        ),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_demo_page_shows_moving_trucks_and_counts_and_the_viewer_cannot_publish() {
    let browser = workspace_root().join("e2e/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "run `npm ci` in e2e/browser (scripts/install-deps.sh)"
    );
    let web = workspace_root().join("demo/web");
    assert!(web.join("vendor/mqtt.min.js").exists(), "MQTT.js not vendored (scripts/install-deps.sh)");
    let kafka = KafkaServer::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let passwords = dir.path().join("passwords");
    let lines = format!("{}\n{}\n", password_line("simulator", "sim-pw"), password_line("viewer", "view-pw"));
    std::fs::write(&passwords, lines).unwrap_or_else(|e| panic!("{e}"));
    let (ws1, ws2) = (free_port(), free_port());
    // One after the other: the first creates the topics.
    let b1 = BrokerProcess::start_with(&kafka, &demo_options(&passwords, ws1));
    let b2 = BrokerProcess::start_with(&kafka, &demo_options(&passwords, ws2));
    wait_for_port(&format!("127.0.0.1:{ws2}"), WAIT);

    let metrics = format!("127.0.0.1:{},127.0.0.1:{}", b1.admin_port, b2.admin_port);
    let fetch = TANSU_FETCH.replace(": ", "=").replace('\'', "");
    let s = |v: &str| v.to_owned();
    let _stream = demo_bin(
        "fleet-stream",
        &[s("--bootstrap"), kafka.bootstrap.clone(), s("--every"), s("1"), s("--window-secs"), s("10")]
            .into_iter()
            .chain([s("--metrics"), metrics, s("-X"), fetch])
            .collect::<Vec<_>>(),
        &[],
    );
    let http = free_port();
    let _web = demo_bin(
        "fleet-web",
        &[s("--listen"), format!("127.0.0.1:{http}"), s("--dir"), web.display().to_string()],
        &[],
    );
    let brokers = format!("{},{}", b1.addr(), b2.addr());
    let sim_args =
        [s("--brokers"), brokers, s("--trucks"), s("50"), s("--interval"), s("1"), s("--time-scale"), s("120")];
    let _sim = demo_bin("fleet-simulator", &sim_args, &[("FLEET_SIM_PASSWORD", "sim-pw")]);
    wait_for_port(&format!("127.0.0.1:{http}"), WAIT);

    // The page: 15 markers that move, sidebar counts from the stream job, a screenshot.
    let shot = std::env::var("DEMO_SCREENSHOT").unwrap_or_else(|_| dir.path().join("demo.png").display().to_string());
    let url = format!(
        "http://127.0.0.1:{http}/?ws=ws://127.0.0.1:{ws1}/mqtt,ws://127.0.0.1:{ws2}/mqtt&user=viewer&password=view-pw"
    );
    let node = Command::new("node").arg(browser.join("demo-test.mjs")).args([&url, &shot, "15"]).output();
    let node = tokio::task::spawn_blocking(move || node).await.unwrap_or_else(|e| panic!("{e}"));
    let out = node.unwrap_or_else(|e| panic!("node (see scripts/install-deps.sh): {e}"));
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "the page check failed: {summary}{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(summary.trim()).unwrap_or_else(|e| panic!("{e}: {summary}"));
    assert_eq!(v["markers"], 15, "{v}");
    assert_ne!(v["N"], "–", "{v}");
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000), "no screenshot at {shot}");

    // The viewer subscribes, but its publish is refused (MQTT 5: PUBACK "not authorized")
    // and never reaches a subscriber: the next messages are the stream job's.
    let mut o = options(b1.port, "viewer-check");
    o.set_credentials("viewer", "view-pw");
    let mut watcher = Client::connect(o).await;
    watcher.subscribe("fleet/stats/#", QoS::AtMostOnce).await;
    let port = b2.port.to_string();
    let publish = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv5", "-q", "1", "-u", "viewer", "-P", "view-pw"])
        .args(["-t", "fleet/stats/directions", "-m", "forged"])
        .output()
        .unwrap_or_else(|e| panic!("mosquitto_pub: {e}"));
    let stderr = String::from_utf8_lossy(&publish.stderr).to_lowercase();
    assert!(stderr.contains("not authorized"), "the viewer's publish was not refused: {stderr}");
    for _ in 0..3 {
        let got = watcher.publish_received(WAIT).await;
        assert!(got.payload.starts_with(b"{\"windowSeconds\""), "not a stream job record: {:?}", got.payload);
    }
}
