//! The process's `tracing` subscriber: log lines, and spans exported with OpenTelemetry.
//!
//! Log lines go to standard output as text or JSON (`logging.format`, overridden by
//! `TRIBUTARY_LOG_FORMAT`), filtered by `RUST_LOG` (default `info`).
//!
//! Spans (`mqtt.connect`, `mqtt.publish`, `mqtt.deliver`, `mqtt.catchup`) are exported over
//! OTLP/HTTP with protobuf bodies, and only when an endpoint is configured:
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `tracing.otlpEndpoint` (base URLs, `/v1/traces` appended), in that order: the environment wins,
//! as OpenTelemetry's conventions say. Without an endpoint no OpenTelemetry layer is installed
//! and the log layer takes events only, so every span is disabled at its call site (an atomic
//! load, nothing recorded). `RUST_LOG` selects spans as it selects log lines: they are at INFO,
//! `mqtt.deliver` (one per message and subscriber) at DEBUG.
//!
//! The sampler is `OTEL_TRACES_SAMPLER` (and `OTEL_TRACES_SAMPLER_ARG`), else
//! `parentbased_traceidratio` with `tracing.sampleRatio`. The service name is `tributary-broker`
//! unless `OTEL_SERVICE_NAME` says otherwise. Spans wait in the SDK's batch processor, a bounded
//! queue (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048 by default; spans beyond it are dropped), and are
//! flushed by [`Telemetry::shutdown`] within 5 seconds, collector reachable or not.
//! A setting this broker cannot honour (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`, an unknown sampler)
//! stops the start with an error naming the variable.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::filter::{filter_fn, FilterExt as _};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{validate_otlp_endpoint, Config, LogFormat};

/// The service name spans are exported under, unless `OTEL_SERVICE_NAME` is set.
const SERVICE_NAME: &str = "tributary-broker";
/// Longest wait at exit for the queued spans to be exported.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest an export request may take (`OTEL_EXPORTER_OTLP_TIMEOUT`'s default).
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

const LOG_FORMAT: &str = "TRIBUTARY_LOG_FORMAT";
const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
const SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

/// Why logging and tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An environment variable has a value this broker cannot honour.
    #[error("{variable}={value:?}: {reason}")]
    Env {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The OTLP exporter could not be built.
    #[error("OTLP exporter for {url}: {reason}")]
    Exporter {
        /// Where spans were to go.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A subscriber is installed already.
    #[error("installing the log subscriber: {0}")]
    Install(#[from] tracing_subscriber::util::TryInitError),
}

/// The installed subscriber's span export, to be shut down at exit.
#[must_use = "shut it down at exit, or queued spans are lost"]
pub struct Telemetry {
    /// `None` when spans are not exported.
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the process's subscriber as `config` and the environment say. Once per process,
    /// before anything logs.
    pub fn install(config: &Config) -> Result<Telemetry, TelemetryError> {
        let settings = Settings::from(config, &|name| std::env::var(name).ok())?;
        let provider = match &settings.export {
            Some(export) => Some(provider(export, BatchSpanProcessor::builder(otlp_exporter(export)?).build())),
            None => None,
        };
        subscriber(settings.format, provider.as_ref(), default_filter, std::io::stdout).try_init()?;
        match &settings.export {
            Some(e) => tracing::info!(
                endpoint = %e.traces_url, sampler = ?e.sampling, service = %e.service_name,
                "exporting spans over OTLP/HTTP"
            ),
            None => tracing::debug!("span export off: no OTLP endpoint configured"),
        }
        Ok(Telemetry { provider })
    }

    /// Exports the spans still queued and stops the exporter; returns within 5 seconds (and a
    /// little) even when the collector does not answer.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        // The SDK's shutdown blocks (on its batch thread's answer, bounded by the timeout): off
        // the async threads.
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT));
        match tokio::time::timeout(SHUTDOWN_TIMEOUT + Duration::from_secs(1), stopped).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "spans not all exported at exit"),
            Ok(Err(_)) | Err(_) => tracing::warn!("span exporter did not stop in time"),
        }
    }
}

/// `RUST_LOG`, or `info` when it is unset or unreadable.
fn default_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The subscriber: log lines of events (never spans: a span no layer wants is disabled at its
/// call site) and, with `provider`, spans to OpenTelemetry. Each layer gets its own `filter()`.
fn subscriber<W>(
    format: LogFormat,
    provider: Option<&SdkTracerProvider>,
    filter: impl Fn() -> EnvFilter,
    writer: W,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let events_only = filter_fn(|metadata| metadata.is_event());
    // A list rather than an `Option` layer: an absent `Option` layer would take every span.
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> =
        vec![fmt.with_filter(filter().and(events_only)).boxed()];
    if let Some(p) = provider {
        let spans = tracing_opentelemetry::layer()
            .with_tracer(p.tracer(SERVICE_NAME))
            // What costs per span and tells little here: busy/idle times, thread names, and
            // the OpenTelemetry context made current (no other instrumentation reads it).
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_context_activation(false);
        layers.push(spans.with_filter(filter()).boxed());
    }
    tracing_subscriber::registry().with(layers)
}

/// The tracer provider of `export`'s sampler and service name, exporting through `processor`.
fn provider(export: &Export, processor: impl SpanProcessor + 'static) -> SdkTracerProvider {
    let resource = Resource::builder().with_service_name(export.service_name.clone()).build();
    SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(export.sampling.sampler())
        .with_resource(resource)
        .build()
}

/// The OTLP/HTTP exporter (protobuf bodies) to `export.traces_url`: hyper with rustls (ring) for
/// `https` URLs, the system's root certificates; plain HTTP otherwise.
fn otlp_exporter(export: &Export) -> Result<OwnRuntime<opentelemetry_otlp::SpanExporter>, TelemetryError> {
    let fail = |reason: String| TelemetryError::Exporter { url: export.traces_url.clone(), reason };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("exporter runtime: {e}")))?;
    let crypto = Arc::new(rustls::crypto::ring::default_provider());
    let tls = hyper_rustls::HttpsConnectorBuilder::new();
    let tls = if export.traces_url.starts_with("https://") {
        tls.with_provider_and_native_roots(crypto).map_err(|e| fail(format!("root certificates: {e}")))?
    } else {
        // No certificates are needed for plain HTTP: none are loaded (the image may have none).
        let config = rustls::ClientConfig::builder_with_provider(crypto)
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(format!("TLS: {e}")))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        tls.with_tls_config(config)
    };
    let client = HyperClient::new(tls.https_or_http().enable_http1().build(), export.timeout, None);
    // Built inside the runtime, which its client uses.
    let exporter = {
        let _entered = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(export.traces_url.as_str())
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(export.timeout)
            .build()
    };
    let exporter = exporter.map_err(|e| fail(e.to_string()))?;
    Ok(OwnRuntime { exporter, runtime })
}

/// An exporter run on a current-thread runtime of its own. The SDK's batch processor exports
/// from a thread of its own, outside the broker's runtime, and the HTTP client needs a tokio
/// runtime: this one, driven by that thread only while an export runs. Exports never take a
/// turn from connections on the broker's workers, and the broker's runtime stopping at exit
/// cannot fail an export still running.
#[derive(Debug)]
struct OwnRuntime<E> {
    exporter: E,
    runtime: tokio::runtime::Runtime,
}

impl<E: SpanExporter> SpanExporter for OwnRuntime<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        // Polled on the batch processor's thread, which is in no runtime.
        self.runtime.block_on(self.exporter.export(batch))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.exporter.shutdown_with_timeout(timeout)
    }

    fn shutdown(&self) -> OTelSdkResult {
        self.exporter.shutdown()
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.exporter.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.exporter.set_resource(resource);
    }
}

/// What the configuration and the environment ask for.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    format: LogFormat,
    /// `None`: spans are not exported.
    export: Option<Export>,
}

/// Where spans go and which are kept.
#[derive(Debug, Clone, PartialEq)]
struct Export {
    /// The URL spans are posted to (`…/v1/traces`).
    traces_url: String,
    sampling: Sampling,
    service_name: String,
    /// Longest an export request may take.
    timeout: Duration,
}

/// Which traces are recorded: `OTEL_TRACES_SAMPLER`'s choices.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sampling {
    /// What decides for a trace this broker starts.
    root: Rule,
    /// Whether a span with a parent follows its parent's decision instead (`parentbased_*`).
    parent_based: bool,
}

/// A sampling rule.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    AlwaysOn,
    AlwaysOff,
    /// This share of traces, chosen by trace id.
    Ratio(f64),
}

impl Sampling {
    fn sampler(self) -> Sampler {
        let root = match self.root {
            Rule::AlwaysOn => Sampler::AlwaysOn,
            Rule::AlwaysOff => Sampler::AlwaysOff,
            Rule::Ratio(r) => Sampler::TraceIdRatioBased(r),
        };
        if self.parent_based {
            Sampler::ParentBased(Box::new(root))
        } else {
            root
        }
    }
}

/// Reads an environment variable; unset and empty are the same (OpenTelemetry's rule).
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn var(env: Env<'_>, name: &str) -> Option<String> {
    env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn env_error(variable: &'static str, value: &str, reason: impl Into<String>) -> TelemetryError {
    TelemetryError::Env { variable, value: value.to_owned(), reason: reason.into() }
}

impl Settings {
    /// The settings of `config` with the environment `env` applied.
    fn from(config: &Config, env: Env<'_>) -> Result<Settings, TelemetryError> {
        let format = match var(env, LOG_FORMAT) {
            Some(v) => v.parse().map_err(|reason: String| env_error(LOG_FORMAT, &v, reason))?,
            None => config.logging.format,
        };
        let disabled = var(env, SDK_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let export = match traces_url(env, config.tracing.otlp_endpoint.as_deref())? {
            Some(traces_url) if !disabled => {
                check_protocol(env)?;
                Some(Export {
                    traces_url,
                    sampling: sampling(env, config.tracing.sample_ratio)?,
                    service_name: var(env, OTEL_SERVICE_NAME).unwrap_or_else(|| SERVICE_NAME.to_owned()),
                    timeout: export_timeout(env)?,
                })
            }
            _ => None,
        };
        Ok(Settings { format, export })
    }
}

/// The URL spans are posted to: the traces endpoint as given, or a base URL with `/v1/traces`.
fn traces_url(env: Env<'_>, configured: Option<&str>) -> Result<Option<String>, TelemetryError> {
    let with_path = |base: &str| format!("{}/v1/traces", base.trim_end_matches('/'));
    let (variable, value, url) = if let Some(url) = var(env, TRACES_ENDPOINT) {
        (TRACES_ENDPOINT, url.clone(), url)
    } else if let Some(base) = var(env, ENDPOINT) {
        (ENDPOINT, base.clone(), with_path(&base))
    } else {
        // Validated with the configuration.
        return Ok(configured.map(with_path));
    };
    validate_otlp_endpoint(&url).map_err(|reason| env_error(variable, &value, reason))?;
    Ok(Some(url))
}

/// Only OTLP/HTTP with protobuf bodies is built in.
fn check_protocol(env: Env<'_>) -> Result<(), TelemetryError> {
    for variable in [TRACES_PROTOCOL, PROTOCOL] {
        let Some(protocol) = var(env, variable) else { continue };
        return match protocol.as_str() {
            "http/protobuf" => Ok(()),
            "grpc" => Err(env_error(
                variable,
                &protocol,
                "OTLP over gRPC is not supported: use http/protobuf (a collector's port 4318)",
            )),
            "http/json" => {
                Err(env_error(variable, &protocol, "OTLP with JSON bodies is not supported: use http/protobuf"))
            }
            _ => Err(env_error(variable, &protocol, "expected http/protobuf")),
        };
    }
    Ok(())
}

/// `OTEL_TRACES_SAMPLER` and its argument, else the parent's decision or `ratio` of the traces.
fn sampling(env: Env<'_>, ratio: f64) -> Result<Sampling, TelemetryError> {
    let Some(name) = var(env, SAMPLER) else {
        return Ok(Sampling { root: Rule::Ratio(ratio), parent_based: true });
    };
    let (parent_based, rule) = match name.strip_prefix("parentbased_") {
        Some(rule) => (true, rule),
        None => (false, name.as_str()),
    };
    let root = match rule {
        "always_on" => Rule::AlwaysOn,
        "always_off" => Rule::AlwaysOff,
        "traceidratio" => Rule::Ratio(match var(env, SAMPLER_ARG) {
            // The specification's default.
            None => 1.0,
            Some(arg) => arg
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| env_error(SAMPLER_ARG, &arg, "expected a ratio between 0 and 1"))?,
        }),
        _ => {
            return Err(env_error(
                SAMPLER,
                &name,
                "expected always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio",
            ))
        }
    };
    Ok(Sampling { root, parent_based })
}

/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT`, in milliseconds.
fn export_timeout(env: Env<'_>) -> Result<Duration, TelemetryError> {
    for variable in [TRACES_TIMEOUT, TIMEOUT] {
        if let Some(v) = var(env, variable) {
            return v.parse().map(Duration::from_millis).map_err(|_| env_error(variable, &v, "expected milliseconds"));
        }
    }
    Ok(DEFAULT_EXPORT_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    use opentelemetry_sdk::trace::SimpleSpanProcessor;

    use crate::config::test_support::config_with;

    /// The settings of the configuration `yaml` (appended to a minimal file) with `vars` set.
    fn settings(yaml: &str, vars: &[(&str, &str)]) -> Result<Settings, TelemetryError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from(&config_with(yaml), &move |name| vars.get(name).cloned())
    }

    fn export(yaml: &str, vars: &[(&str, &str)]) -> Option<Export> {
        settings(yaml, vars).expect("settings").export
    }

    fn error(yaml: &str, vars: &[(&str, &str)]) -> String {
        settings(yaml, vars).expect_err("an error").to_string()
    }

    fn sampling_of(vars: &[(&str, &str)]) -> Sampling {
        let mut with_endpoint = vec![(ENDPOINT, "http://c:4318")];
        with_endpoint.extend_from_slice(vars);
        export("", &with_endpoint).expect("export").sampling
    }

    const CONFIGURED: &str = "tracing: {otlpEndpoint: 'http://configured:4318/', sampleRatio: 0.5}\n";

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert_eq!(settings("", &[]).expect("settings"), Settings { format: LogFormat::Text, export: None });
        // Nothing else is looked at then.
        assert_eq!(export("", &[(PROTOCOL, "grpc"), (SAMPLER, "xray")]), None);
        assert_eq!(export(CONFIGURED, &[(SDK_DISABLED, "true")]), None);
        assert_eq!(export("", &[(ENDPOINT, "")]), None, "empty is unset");
    }

    #[test]
    fn the_environment_wins_over_the_configuration() {
        let e = export(CONFIGURED, &[]).expect("export");
        assert_eq!(e.traces_url, "http://configured:4318/v1/traces");
        assert_eq!(e.sampling, Sampling { root: Rule::Ratio(0.5), parent_based: true });
        assert_eq!((e.service_name.as_str(), e.timeout), (SERVICE_NAME, DEFAULT_EXPORT_TIMEOUT));

        let e = export(CONFIGURED, &[(ENDPOINT, "https://env:4318")]).expect("export");
        assert_eq!(e.traces_url, "https://env:4318/v1/traces");
        let e = export(CONFIGURED, &[(ENDPOINT, "http://env:4318"), (TRACES_ENDPOINT, "http://traces:1/custom")]);
        assert_eq!(e.expect("export").traces_url, "http://traces:1/custom", "the traces endpoint is taken as given");

        let e = export(CONFIGURED, &[(SAMPLER, "always_on"), (OTEL_SERVICE_NAME, "edge"), (TIMEOUT, "2500")]);
        let e = e.expect("export");
        assert_eq!(e.sampling, Sampling { root: Rule::AlwaysOn, parent_based: false });
        assert_eq!((e.service_name.as_str(), e.timeout), ("edge", Duration::from_millis(2500)));
        assert_eq!(
            export(CONFIGURED, &[(TIMEOUT, "1"), (TRACES_TIMEOUT, "7")]).expect("export").timeout.as_millis(),
            7
        );

        assert_eq!(settings("logging: {format: json}\n", &[]).expect("settings").format, LogFormat::Json);
        assert_eq!(settings("logging: {format: json}\n", &[(LOG_FORMAT, "text")]).expect("s").format, LogFormat::Text);
    }

    #[test]
    fn samplers_are_read_from_the_environment() {
        let s = |root, parent_based| Sampling { root, parent_based };
        assert_eq!(sampling_of(&[]), s(Rule::Ratio(1.0), true));
        assert_eq!(sampling_of(&[(SAMPLER, "always_off")]), s(Rule::AlwaysOff, false));
        assert_eq!(sampling_of(&[(SAMPLER, "parentbased_always_on")]), s(Rule::AlwaysOn, true));
        assert_eq!(sampling_of(&[(SAMPLER, "parentbased_always_off")]), s(Rule::AlwaysOff, true));
        assert_eq!(sampling_of(&[(SAMPLER, "traceidratio"), (SAMPLER_ARG, "0.1")]), s(Rule::Ratio(0.1), false));
        assert_eq!(sampling_of(&[(SAMPLER, "traceidratio")]), s(Rule::Ratio(1.0), false), "the default argument");
        assert_eq!(
            sampling_of(&[(SAMPLER, "parentbased_traceidratio"), (SAMPLER_ARG, "0.25")]),
            s(Rule::Ratio(0.25), true)
        );
        assert!(matches!(s(Rule::AlwaysOff, false).sampler(), Sampler::AlwaysOff));
        assert!(matches!(s(Rule::Ratio(0.5), true).sampler(), Sampler::ParentBased(_)));
    }

    #[test]
    fn unusable_variables_stop_the_start_naming_the_variable() {
        let endpoint = (ENDPOINT, "http://c:4318");
        assert_eq!(
            error("", &[endpoint, (PROTOCOL, "grpc")]),
            "OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\": OTLP over gRPC is not supported: use http/protobuf (a collector's port 4318)"
        );
        assert!(
            error("", &[endpoint, (TRACES_PROTOCOL, "http/json")]).starts_with("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=")
        );
        assert_eq!(
            export("", &[endpoint, (PROTOCOL, "http/protobuf")]).map(|e| e.traces_url).as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert!(
            export("", &[endpoint, (TRACES_PROTOCOL, "http/protobuf"), (PROTOCOL, "grpc")]).is_some(),
            "the traces variable wins"
        );
        assert!(error("", &[endpoint, (SAMPLER, "jaeger_remote")])
            .starts_with("OTEL_TRACES_SAMPLER=\"jaeger_remote\": expected always_on"));
        for arg in ["2", "-1", "half"] {
            assert!(
                error("", &[endpoint, (SAMPLER, "traceidratio"), (SAMPLER_ARG, arg)])
                    .starts_with(&format!("OTEL_TRACES_SAMPLER_ARG={arg:?}: expected a ratio")),
                "{arg}"
            );
        }
        assert!(
            error("", &[(ENDPOINT, "collector:4318")]).starts_with("OTEL_EXPORTER_OTLP_ENDPOINT=\"collector:4318\": ")
        );
        assert!(error("", &[(TRACES_ENDPOINT, "ftp://c")]).starts_with("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="));
        assert_eq!(error("", &[endpoint, (TIMEOUT, "5s")]), "OTEL_EXPORTER_OTLP_TIMEOUT=\"5s\": expected milliseconds");
        assert_eq!(
            error("", &[(LOG_FORMAT, "yaml")]),
            "TRIBUTARY_LOG_FORMAT=\"yaml\": unknown log format \"yaml\": expected `text` or `json`"
        );
    }

    /// Names of the spans an exporter was given.
    #[derive(Debug, Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<String>>>);

    impl SpanExporter for Recorded {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().expect("lock").extend(batch.into_iter().map(|s| s.name.into_owned()));
            Ok(())
        }
    }

    impl Recorded {
        fn names(&self) -> Vec<String> {
            self.0.lock().expect("lock").clone()
        }
    }

    /// Runs `f` under the subscriber `install` would make for `export` (`None`: no export), with
    /// spans going to the returned recorder.
    fn traced(export: Option<&Export>, f: impl FnOnce()) -> Recorded {
        let recorded = Recorded::default();
        let provider = export.map(|e| provider(e, SimpleSpanProcessor::new(recorded.clone())));
        let subscriber = subscriber(LogFormat::Json, provider.as_ref(), || EnvFilter::new("info"), std::io::sink);
        tracing::subscriber::with_default(subscriber, f);
        recorded
    }

    #[test]
    fn without_export_spans_are_disabled_at_their_call_sites() {
        let recorded = traced(None, || {
            let span = tracing::info_span!("mqtt.connect", client_id = "a");
            assert!(span.is_disabled(), "no layer takes spans");
            assert!(tracing::event_enabled!(tracing::Level::INFO), "log lines still are written");
        });
        assert!(recorded.names().is_empty());
    }

    #[test]
    fn sampled_spans_are_exported_and_always_off_exports_none() {
        let on = export("", &[(ENDPOINT, "http://c:4318")]).expect("export");
        let recorded = traced(Some(&on), || {
            let span = tracing::info_span!("mqtt.connect", client_id = "a");
            assert!(!span.is_disabled());
            drop(span);
            // Below the filter's level: not even created.
            assert!(tracing::debug_span!("mqtt.deliver").is_disabled());
        });
        assert_eq!(recorded.names(), ["mqtt.connect"]);

        let off = export("", &[(ENDPOINT, "http://c:4318"), (SAMPLER, "always_off")]).expect("export");
        let recorded = traced(Some(&off), || {
            drop(tracing::info_span!("mqtt.connect", client_id = "a"));
        });
        assert!(recorded.names().is_empty(), "{:?}", recorded.names());
    }

    /// A writer into a shared buffer.
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_logs_are_one_object_per_line() {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let buffer = buffer.clone();
            move || Captured(buffer.clone())
        };
        let subscriber = subscriber(LogFormat::Json, None, || EnvFilter::new("info"), writer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(client = "a", "client connected");
            tracing::debug!("below the filter");
        });
        let text = String::from_utf8(buffer.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(
            (&lines[0]["message"], &lines[0]["client"], &lines[0]["level"]),
            (&"client connected".into(), &"a".into(), &"INFO".into())
        );
    }
}
