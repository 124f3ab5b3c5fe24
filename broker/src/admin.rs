//! The admin HTTP endpoint: liveness, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tokio::net::TcpListener;

use crate::broker::Broker;
use crate::shutdown::Shutdown;

/// Serves `/healthz`, `/readyz` and `/metrics` until shutdown.
pub(crate) async fn serve(listener: TcpListener, broker: Arc<Broker>, mut shutdown: Shutdown) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(broker);
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.recv().await }).await
}

async fn ready(State(broker): State<Arc<Broker>>) -> (StatusCode, &'static str) {
    if broker.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    }
}

async fn metrics(State(broker): State<Arc<Broker>>) -> String {
    broker.observe();
    broker.metrics.render()
}
