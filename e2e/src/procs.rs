//! Child processes: the tansu Kafka server and tributary-broker.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

use crate::{free_port, wait_for_port, workspace_root, TANSU_FETCH};

fn tansu_bin() -> PathBuf {
    match std::env::var_os("TANSU_BIN") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".tools/bin/tansu"),
    }
}

/// The broker binary the tests run (`target/debug/tributary-broker`).
pub fn broker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TRIBUTARY_BROKER_BIN") {
        return PathBuf::from(p);
    }
    workspace_bin("tributary-broker")
}

/// A binary of the workspace built by `cargo build --workspace --bins`: `target/debug/<name>`,
/// under `CARGO_TARGET_DIR` when that is set.
pub fn workspace_bin(name: &str) -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join(name)
}

/// A line of a password file for `user` with `password`, as an operator makes it: with the
/// broker's `hash-password` command (an argon2id hash with a fresh salt).
pub fn password_line(user: &str, password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(broker_bin())
        .args(["hash-password", "--user", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} hash-password: {e}", broker_bin().display()));
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{password}").unwrap_or_else(|e| panic!("hash-password stdin: {e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("hash-password: {e}"));
    assert!(out.status.success(), "hash-password failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn log_stdio() -> Stdio {
    // Child output goes to the test's output only when asked: it is noisy.
    if std::env::var_os("E2E_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// A tansu server on a free loopback port with sqlite storage in a temporary directory.
pub struct KafkaServer {
    /// `127.0.0.1:PORT`.
    pub bootstrap: String,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl KafkaServer {
    /// Starts tansu and waits until it accepts connections.
    pub fn start() -> KafkaServer {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let port = free_port();
        let mut k = KafkaServer { bootstrap: format!("127.0.0.1:{port}"), port, dir, child: None };
        k.spawn();
        k
    }

    fn spawn(&mut self) {
        let bin = tansu_bin();
        assert!(bin.exists(), "tansu not found at {} (run `make deps`, or set TANSU_BIN)", bin.display());
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(&bin)
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .stdout(log_stdio())
            .stderr(log_stdio())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        self.child = Some(child);
        wait_for_port(&self.bootstrap, Duration::from_secs(20));
    }

    /// Kills the server (Kafka outage); data stays on disk.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for KafkaServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Options for a broker process.
#[derive(Clone, Default)]
pub struct BrokerOptions {
    /// `topics.mappings` as (kafkaTopic, patterns).
    pub mappings: Vec<(String, Vec<String>)>,
    /// Entries of the `limits:` section, e.g. (`maxInflight`, `4`).
    pub limits: Vec<(String, String)>,
    /// More `listeners:` entries, as YAML flow mappings (e.g. an `mqtts` listener).
    pub extra_listeners: Vec<String>,
    /// The `authentication:` section, as a YAML flow mapping.
    pub authentication: Option<String>,
    /// The `authorization:` section, as a YAML flow mapping.
    pub authorization: Option<String>,
    /// The `rebalance:` section, as a YAML flow mapping.
    pub rebalance: Option<String>,
    /// Environment variables of the process (e.g. `OTEL_*`), set after `RUST_LOG`, so they may
    /// replace it.
    pub env: Vec<(String, String)>,
}

/// A tributary-broker process with its own config file and ports.
pub struct BrokerProcess {
    /// MQTT listener port.
    pub port: u16,
    /// Admin HTTP port.
    pub admin_port: u16,
    kafka_bootstrap: String,
    config_path: PathBuf,
    env: Vec<(String, String)>,
    _dir: TempDir,
    child: Option<Child>,
}

impl BrokerProcess {
    /// Starts a broker on `kafka` and waits until it is ready.
    pub fn start(kafka: &KafkaServer) -> BrokerProcess {
        Self::start_with(kafka, &BrokerOptions::default())
    }

    /// Starts a broker with options.
    pub fn start_with(kafka: &KafkaServer, opts: &BrokerOptions) -> BrokerProcess {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let config_path = dir.path().join("broker.yaml");
        let mut b = BrokerProcess {
            port: free_port(),
            admin_port: free_port(),
            kafka_bootstrap: kafka.bootstrap.clone(),
            config_path,
            env: opts.env.clone(),
            _dir: dir,
            child: None,
        };
        b.rewrite_config(opts);
        b.spawn();
        b
    }

    /// Replaces the config file with one for `opts` (same ports and Kafka), the way
    /// Kubernetes updates a mounted ConfigMap: a new file renamed over the old one, so the
    /// broker never reads a half-written file. A running broker picks it up on its next poll.
    pub fn rewrite_config(&self, opts: &BrokerOptions) {
        let tmp = self.config_path.with_extension("yaml.tmp");
        std::fs::write(&tmp, self.render_config(opts)).unwrap_or_else(|e| panic!("writing config: {e}"));
        std::fs::rename(&tmp, &self.config_path).unwrap_or_else(|e| panic!("replacing config: {e}"));
    }

    /// The broker's YAML config for `opts`.
    fn render_config(&self, opts: &BrokerOptions) -> String {
        let mut yaml = format!(
            "listeners:\n  - {{ name: mqtt, protocol: mqtt, address: \"127.0.0.1:{}\" }}\n\
             admin:\n  address: \"127.0.0.1:{}\"\n\
             kafka:\n  bootstrapServers: \"{}\"\n  properties: {{ {TANSU_FETCH} }}\n\
             topics:\n  partitions: 3\n  mappings:\n",
            self.port, self.admin_port, self.kafka_bootstrap
        );
        for l in &opts.extra_listeners {
            yaml = yaml.replacen("admin:\n", &format!("  - {l}\nadmin:\n"), 1);
        }
        for (k, patterns) in &opts.mappings {
            let list: Vec<String> = patterns.iter().map(|p| format!("\"{p}\"")).collect();
            yaml.push_str(&format!("    - {{ kafkaTopic: {k}, mqttTopics: [{}] }}\n", list.join(", ")));
        }
        if opts.mappings.is_empty() {
            yaml.push_str("    []\n");
        }
        if let Some(a) = &opts.authentication {
            yaml.push_str(&format!("authentication: {a}\n"));
        }
        if let Some(a) = &opts.authorization {
            yaml.push_str(&format!("authorization: {a}\n"));
        }
        if let Some(r) = &opts.rebalance {
            yaml.push_str(&format!("rebalance: {r}\n"));
        }
        if !opts.limits.is_empty() {
            yaml.push_str("limits:\n");
            for (k, v) in &opts.limits {
                yaml.push_str(&format!("  {k}: {v}\n"));
            }
        }
        yaml
    }

    fn spawn(&mut self) {
        let bin = broker_bin();
        assert!(bin.exists(), "broker binary not found at {} (run `cargo build --workspace --bins`)", bin.display());
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&self.config_path)
            .env("RUST_LOG", std::env::var("E2E_RUST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log_stdio())
            .stderr(log_stdio())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        self.child = Some(child);
        wait_for_port(&self.addr(), Duration::from_secs(60));
    }

    /// `127.0.0.1:PORT` of the MQTT listener.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id, while it runs (for a tool that kills it from outside).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL (a crashed pod).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process with SIGTERM and waits for it (a pod being shut down).
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (a pod being deleted) without waiting for the process.
    pub fn send_term(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
    }

    /// Waits up to `timeout` for the process to exit; whether it did.
    pub fn exited_within(&mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            match self.child.as_mut().map(Child::try_wait) {
                None | Some(Ok(Some(_))) | Some(Err(_)) => {
                    self.child = None;
                    return true;
                }
                Some(Ok(None)) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        false
    }

    /// Starts the process again with the same config and ports.
    pub fn restart(&mut self) {
        self.terminate();
        self.spawn();
    }

    /// The broker's resident memory (`VmRSS` of /proc), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().map(Child::id).unwrap_or_else(|| panic!("the broker is not running"));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("{e}"));
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_else(|| panic!("no VmRSS"));
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("VmRSS: {line}"))
    }

    /// The broker's `/metrics` text.
    pub fn metrics(&self) -> String {
        crate::kafka::http_get(&format!("127.0.0.1:{}", self.admin_port), "/metrics")
    }

    /// The value of one series of `/metrics`, written as exposed (`name` or
    /// `name{label="v"}`); `None` when the broker does not export it.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics(), series)
    }
}

/// The value of `series` in a Prometheus text exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
