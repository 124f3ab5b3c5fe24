//! Controller flow against kube's mock API service (tower-test): each test scripts the
//! requests the reconciler must make, in order, with canned responses, and then checks what
//! was sent.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{broker, spec, FULL_SPEC, MINIMAL_SPEC};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tributary_operator::crd::{MqttBroker, MqttBrokerStatus};
use tributary_operator::error::Error;
use tributary_operator::reconcile::{backoff_delay, error_policy, reconcile, Context, Settings};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// A canned response computed from the request body.
type Responder = Box<dyn Fn(&Value) -> (StatusCode, Value) + Send>;

/// One expected request.
struct Step {
    method: Method,
    path: String,
    respond: Responder,
}

/// One request as the mock API server received it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    body: Value,
}

const NS: &str = "/api/v1/namespaces/iot";
const APPS: &str = "/apis/apps/v1/namespaces/iot";

fn step(method: Method, path: impl Into<String>, respond: Responder) -> Step {
    Step { method, path: path.into(), respond }
}

/// Answers with the request body, merged with `extra` (e.g. a status the server adds).
fn echo(extra: Value) -> Responder {
    Box::new(move |body| {
        let mut out = body.clone();
        merge(&mut out, &extra);
        (StatusCode::OK, out)
    })
}

fn merge(target: &mut Value, extra: &Value) {
    match (target, extra) {
        (Value::Object(t), Value::Object(e)) => {
            for (k, v) in e {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, e) => *t = e.clone(),
    }
}

fn reply(status: StatusCode, body: Value) -> Responder {
    Box::new(move |_| (status, body.clone()))
}

fn not_found() -> Responder {
    reply(
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

fn server_error() -> Responder {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "InternalError", "code": 500, "message": "etcd is sad"}),
    )
}

/// Serves `steps` in order, failing the test on any unexpected request.
async fn serve(mut handle: Handle, steps: Vec<Step>) -> Vec<Seen> {
    let mut seen = Vec::new();
    for expected in steps {
        let (request, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {} {}", expected.method, expected.path))
            .unwrap_or_else(|| panic!("client gone before {} {}", expected.method, expected.path));
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        assert_eq!(
            (&method, path.as_str()),
            (&expected.method, expected.path.as_str()),
            "unexpected request (query {query})"
        );
        let bytes = request.into_body().collect_bytes().await.expect("request body");
        let body: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("request body is JSON") };
        let (status, response) = (expected.respond)(&body);
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&response).expect("response JSON")))
                .expect("response"),
        );
        seen.push(Seen { method, path, query, body });
    }
    seen
}

/// A Kafka stand-in: a listening socket the reachability probe can connect to.
async fn fake_kafka() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    (listener, addr)
}

/// Topic creation against real Kafka (tansu) is tested in `e2e/tests/operator_topics.rs`; here
/// it is only enabled where the reconcile must stop before talking Kafka.
fn context(client: Client, create_topics: bool) -> Arc<Context> {
    Arc::new(Context::new(
        client,
        Settings {
            default_image: "example/broker:test".into(),
            kafka_timeout: Duration::from_secs(2),
            topics_timeout: Duration::from_secs(2),
            create_topics,
            scrape_metrics: true,
            scrape_timeout: Duration::from_millis(200),
            resync: Duration::from_secs(60),
        },
    ))
}

/// Runs one reconcile against the scripted API server, without creating topics.
async fn run(
    b: MqttBroker,
    steps: Vec<Step>,
) -> (Result<kube::runtime::controller::Action, Error>, Vec<Seen>, Arc<Context>) {
    run_with(b, steps, false).await
}

/// Runs one reconcile against the scripted API server.
async fn run_with(
    b: MqttBroker,
    steps: Vec<Step>,
    create_topics: bool,
) -> (Result<kube::runtime::controller::Action, Error>, Vec<Seen>, Arc<Context>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let ctx = context(Client::new(service, "default"), create_topics);
    let server = tokio::spawn(serve(handle, steps));
    let result = reconcile(Arc::new(b), ctx.clone()).await;
    let seen = server.await.expect("mock server task");
    (result, seen, ctx)
}

fn ready_deployment() -> Value {
    json!({
        "metadata": {"generation": 1},
        "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}
    })
}

fn lb_service() -> Value {
    json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}})
}

/// The requests of a full reconcile of a valid spec, up to and including the pod listing.
fn apply_steps(deployment_status: Value, autoscaled: bool) -> Vec<Step> {
    let mut steps = vec![
        step(Method::PATCH, format!("{NS}/serviceaccounts/cars"), echo(json!({}))),
        step(Method::PATCH, format!("{NS}/configmaps/cars"), echo(json!({}))),
        step(Method::PATCH, format!("{APPS}/deployments/cars"), echo(deployment_status)),
        step(Method::PATCH, format!("{NS}/services/cars"), echo(lb_service())),
        step(Method::PATCH, "/apis/policy/v1/namespaces/iot/poddisruptionbudgets/cars", echo(json!({}))),
    ];
    let hpa = "/apis/autoscaling/v2/namespaces/iot/horizontalpodautoscalers/cars";
    steps.push(if autoscaled {
        step(Method::PATCH, hpa, echo(json!({})))
    } else {
        step(Method::DELETE, hpa, not_found())
    });
    steps.push(step(
        Method::GET,
        format!("{NS}/pods"),
        reply(StatusCode::OK, json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []})),
    ));
    steps
}

fn status_step() -> Step {
    step(
        Method::PATCH,
        "/apis/tributary.io/v1alpha1/namespaces/iot/mqttbrokers/cars/status",
        Box::new(|body| {
            let mut b = serde_json::to_value(broker("cars", spec(MINIMAL_SPEC))).expect("json");
            b["status"] = body["status"].clone();
            (StatusCode::OK, b)
        }),
    )
}

fn event_step() -> Step {
    step(
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/iot/events",
        Box::new(|body| (StatusCode::CREATED, body.clone())),
    )
}

fn spec_with_kafka(yaml: &str, kafka: &str) -> tributary_operator::crd::MqttBrokerSpec {
    let mut s = spec(yaml);
    s.kafka.bootstrap_servers = kafka.to_string();
    s
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("condition {type_}"))
}

#[tokio::test]
async fn first_reconcile_creates_children_and_writes_status() {
    let (_kafka, kafka_addr) = fake_kafka().await;
    let b = broker("cars", spec_with_kafka(MINIMAL_SPEC, &kafka_addr));
    let expected_children = tributary_operator::desired::children(&b, "example/broker:test").expect("children");

    let mut steps = apply_steps(json!({"metadata": {"generation": 1}, "status": {}}), false);
    steps.push(status_step());
    steps.push(event_step()); // Ready became False (no pod ready yet)
    steps.push(event_step()); // KafkaReachable became True
    let (result, seen, _) = run(b, steps).await;
    result.expect("reconcile succeeds");

    // Server-side apply, one field manager, forced.
    for s in seen.iter().filter(|s| s.method == Method::PATCH) {
        assert!(s.query.contains("fieldManager=tributary-operator"), "{}: {}", s.path, s.query);
        assert!(s.query.contains("force=true"), "{}: {}", s.path, s.query);
    }
    // Exactly the desired objects were applied.
    assert_eq!(seen[0].body, serde_json::to_value(&expected_children.service_account).expect("json"));
    assert_eq!(seen[1].body, serde_json::to_value(&expected_children.config_map).expect("json"));
    assert_eq!(seen[2].body, serde_json::to_value(&expected_children.deployment).expect("json"));
    assert_eq!(seen[3].body, serde_json::to_value(&expected_children.service).expect("json"));
    assert_eq!(seen[4].body, serde_json::to_value(&expected_children.pod_disruption_budget).expect("json"));
    assert_eq!(seen[1].body["kind"], "ConfigMap");
    assert_eq!(seen[1].body["apiVersion"], "v1");
    assert!(
        seen[6]
            .query
            .contains("labelSelector=app.kubernetes.io%2Finstance%3Dcars%2Capp.kubernetes.io%2Fname%3Dtributary"),
        "{}",
        seen[6].query
    );

    let status = &seen[7].body["status"];
    assert_eq!(seen[7].body["kind"], "MqttBroker");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["selector"], "app.kubernetes.io/instance=cars,app.kubernetes.io/name=tributary");
    assert_eq!(status["replicas"], 0);
    assert_eq!(status["readyReplicas"], 0);
    assert_eq!(status["connections"], 0);
    assert_eq!(status["endpoints"], json!(["mqtt://203.0.113.7:1883"]));
    let ready = condition(status, "Ready");
    assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("False"), Some("NoBrokerReady")));
    assert_eq!(ready["observedGeneration"], 1);
    assert!(ready["lastTransitionTime"].is_string());
    let reconciling = condition(status, "Reconciling");
    assert_eq!((reconciling["status"].as_str(), reconciling["reason"].as_str()), (Some("True"), Some("RollingOut")));
    let kafka = condition(status, "KafkaReachable");
    assert_eq!(kafka["status"], "True");
    assert_eq!(kafka["reason"], "Connected");
    assert!(kafka["message"].as_str().expect("message").contains(&format!("reached {kafka_addr}")));

    let reasons: Vec<&str> = seen[8..].iter().map(|s| s.body["reason"].as_str().unwrap_or_default()).collect();
    assert_eq!(reasons, vec!["NoBrokerReady", "Connected"]);
    assert_eq!(seen[8].body["type"], "Warning");
    assert_eq!(seen[8].body["regarding"]["kind"], "MqttBroker");
    assert_eq!(seen[9].body["type"], "Normal");
}

/// Runs a reconcile of `yaml` and returns the captured requests.
async fn reconcile_spec(
    kafka_addr: &str,
    yaml: &str,
    status: Option<MqttBrokerStatus>,
    autoscaled: bool,
    tail: Vec<Step>,
) -> Vec<Seen> {
    let mut b = broker("cars", spec_with_kafka(yaml, kafka_addr));
    b.status = status;
    let mut steps = apply_steps(ready_deployment(), autoscaled);
    steps.extend(tail);
    let (result, seen, _) = run(b, steps).await;
    result.expect("reconcile succeeds");
    seen
}

fn config_hash(seen: &[Seen]) -> String {
    seen[2].body["spec"]["template"]["metadata"]["annotations"]["tributary.io/config-hash"]
        .as_str()
        .expect("hash")
        .to_string()
}

#[tokio::test]
async fn spec_changes_patch_the_children() {
    let (_kafka, k) = fake_kafka().await;
    let before = reconcile_spec(&k, MINIMAL_SPEC, None, false, vec![status_step(), event_step(), event_step()]).await;
    let ready = condition(&before[7].body["status"], "Ready");
    assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("True"), Some("BrokersReady")));
    let previous: MqttBrokerStatus = serde_json::from_value(before[7].body["status"].clone()).expect("status");

    // A mapping edit: the ConfigMap changes, the pods are not rolled.
    let mapping =
        format!("{MINIMAL_SPEC}\ntopics: {{ mappings: [{{ kafkaTopic: k1, mqttTopics: ['cars/speed/+'] }}] }}");
    let after = reconcile_spec(&k, &mapping, Some(previous.clone()), false, vec![]).await;
    assert_ne!(after[1].body["data"], before[1].body["data"]);
    assert!(after[1].body["data"]["broker.yaml"].as_str().expect("yaml").contains("cars/speed/+"));
    assert_eq!(config_hash(&after), config_hash(&before), "hot-reloadable: no roll");
    // Status did not change, so it was not written and no event was recorded (script ended).
    assert_eq!(after.len(), 7);

    // A listener edit rolls the pods.
    let listener = format!("{MINIMAL_SPEC}\nlisteners: [{{ name: mqtt, protocol: mqtt, port: 1884 }}]");
    let after = reconcile_spec(&k, &listener, Some(previous.clone()), false, vec![status_step()]).await;
    assert_ne!(config_hash(&after), config_hash(&before), "listener change rolls");
    assert_eq!(after[3].body["spec"]["ports"][0]["port"], 1884);
    assert_eq!(after[7].body["status"]["endpoints"], json!(["mqtt://203.0.113.7:1884"]));

    // An image edit changes the pod template.
    let image = format!("{MINIMAL_SPEC}\nimage: example/broker:next");
    let after = reconcile_spec(&k, &image, Some(previous.clone()), false, vec![]).await;
    assert_eq!(after[2].body["spec"]["template"]["spec"]["containers"][0]["image"], "example/broker:next");

    // Autoscaling applies an HPA and leaves replicas to it.
    let full = reconcile_spec(&k, FULL_SPEC, Some(previous), true, vec![status_step()]).await;
    assert_eq!(full[5].body["kind"], "HorizontalPodAutoscaler");
    assert_eq!(full[5].body["spec"]["metrics"][0]["pods"]["metric"]["name"], "tributary_connections");
    assert!(full[2].body["spec"].get("replicas").is_none());
}

#[tokio::test]
async fn invalid_spec_sets_invalid_spec_without_touching_children() {
    let mut b =
        broker("cars", spec("kafka: { bootstrapServers: 'kafka' }\nautoscaling: { minReplicas: 4, maxReplicas: 2 }"));
    b.metadata.generation = Some(3);
    b.status = Some(MqttBrokerStatus { replicas: Some(2), ready_replicas: Some(2), ..MqttBrokerStatus::default() });
    let (result, seen, _) = run(b, vec![status_step(), event_step()]).await;
    result.expect("an invalid spec is not a reconcile error");
    assert_eq!(seen.len(), 2, "only the status and an event: no child was touched");
    let status = &seen[0].body["status"];
    assert_eq!(status["observedGeneration"], 3);
    assert_eq!(status["readyReplicas"], 2, "the running pods are still reported");
    let ready = condition(status, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    let message = ready["message"].as_str().expect("message");
    assert!(message.contains("spec.kafka.bootstrapServers"), "{message}");
    assert!(message.contains("spec.autoscaling.minReplicas"), "{message}");
    assert_eq!(condition(status, "Reconciling")["reason"], "InvalidSpec");
    assert_eq!(seen[1].body["reason"], "InvalidSpec");
    assert_eq!(seen[1].body["type"], "Warning");
}

#[tokio::test]
async fn unreachable_kafka_is_a_condition_not_an_error() {
    // Bind and drop: the port is (almost certainly) closed.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let b = broker("cars", spec_with_kafka(MINIMAL_SPEC, &addr));
    let mut steps = apply_steps(ready_deployment(), false);
    steps.extend([status_step(), event_step(), event_step()]);
    let (result, seen, _) = run(b, steps).await;
    let action = result.expect("reconcile succeeds");
    let kafka = condition(&seen[7].body["status"], "KafkaReachable");
    assert_eq!((kafka["status"].as_str(), kafka["reason"].as_str()), (Some("False"), Some("Unreachable")));
    assert!(kafka["message"].as_str().expect("message").contains(&addr));
    assert_eq!(seen[9].body["type"], "Warning");
    assert_eq!(action, kube::runtime::controller::Action::requeue(Duration::from_secs(15)));
}

#[tokio::test]
async fn missing_credentials_secret_blocks_topic_creation_with_a_condition() {
    let (_kafka, kafka_addr) = fake_kafka().await;
    let yaml = "kafka: { bootstrapServers: kafka, credentialsSecretRef: { name: kafka-creds } }";
    let b = broker("cars", spec_with_kafka(yaml, &kafka_addr));
    let mut steps = apply_steps(ready_deployment(), false);
    // The Secret is read after the children are applied, before the pods are listed.
    let pods = steps.pop().expect("pod listing step");
    steps.push(step(Method::GET, format!("{NS}/secrets/kafka-creds"), not_found()));
    steps.extend([pods, status_step(), event_step(), event_step()]);
    let (result, seen, _) = run_with(b, steps, true).await;
    let action = result.expect("a missing Secret is a condition, not a reconcile error");
    let kafka = condition(&seen[8].body["status"], "KafkaReachable");
    assert_eq!((kafka["status"].as_str(), kafka["reason"].as_str()), (Some("False"), Some("TopicsNotCreated")));
    let message = kafka["message"].as_str().expect("message");
    assert!(message.contains("spec.kafka.credentialsSecretRef") && message.contains("kafka-creds"), "{message}");
    assert_eq!(action, kube::runtime::controller::Action::requeue(Duration::from_secs(15)));
}

#[tokio::test]
async fn a_forbidden_credentials_secret_is_a_condition_not_a_failed_reconcile() {
    let (_kafka, kafka_addr) = fake_kafka().await;
    let yaml = "kafka: { bootstrapServers: kafka, credentialsSecretRef: { name: kafka-creds } }";
    let b = broker("cars", spec_with_kafka(yaml, &kafka_addr));
    let mut steps = apply_steps(ready_deployment(), false);
    let pods = steps.pop().expect("pod listing step");
    let forbidden = reply(
        StatusCode::FORBIDDEN,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
               "message": "secrets \"kafka-creds\" is forbidden"}),
    );
    steps.push(step(Method::GET, format!("{NS}/secrets/kafka-creds"), forbidden));
    steps.extend([pods, status_step(), event_step(), event_step()]);
    let (result, seen, _) = run_with(b, steps, true).await;
    result.expect("RBAC trouble with the Secret is reported in status");
    let kafka = condition(&seen[8].body["status"], "KafkaReachable");
    assert_eq!(kafka["reason"], "TopicsNotCreated");
    let message = kafka["message"].as_str().expect("message");
    assert!(message.contains("cannot read secret kafka-creds") && message.contains("forbidden"), "{message}");
}

#[tokio::test]
async fn api_errors_fail_the_reconcile_and_back_off() {
    let (_kafka, kafka_addr) = fake_kafka().await;
    let b = broker("cars", spec_with_kafka(MINIMAL_SPEC, &kafka_addr));
    let steps = vec![
        step(Method::PATCH, format!("{NS}/serviceaccounts/cars"), echo(json!({}))),
        step(Method::PATCH, format!("{NS}/configmaps/cars"), echo(json!({}))),
        step(Method::PATCH, format!("{APPS}/deployments/cars"), server_error()),
    ];
    let (result, seen, ctx) = run(b.clone(), steps).await;
    let error = result.expect_err("a 500 fails the reconcile");
    assert!(matches!(error, Error::Kube(_)), "{error}");
    assert_eq!(seen.len(), 3, "nothing after the failed apply");

    let b = Arc::new(b);
    let delays: Vec<_> = (0..3).map(|_| error_policy(b.clone(), &error, ctx.clone())).collect();
    assert_eq!(
        delays,
        vec![
            kube::runtime::controller::Action::requeue(Duration::from_secs(5)),
            kube::runtime::controller::Action::requeue(Duration::from_secs(10)),
            kube::runtime::controller::Action::requeue(Duration::from_secs(20)),
        ]
    );
}

#[test]
fn backoff_is_capped() {
    assert_eq!(backoff_delay(1), Duration::from_secs(5));
    assert_eq!(backoff_delay(4), Duration::from_secs(40));
    assert_eq!(backoff_delay(7), Duration::from_secs(300));
    assert_eq!(backoff_delay(u32::MAX), Duration::from_secs(300));
}
