//! Request spans and Prometheus metrics.
//!
//! The metrics recorder is process-wide (the `metrics` facade has one global recorder), so it is
//! installed once, on the first router built, and every router renders from the same handle.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Span;

const REQUESTS_METRIC: &str = "hikitsugi_http_requests_total";
const DURATION_METRIC: &str = "hikitsugi_http_request_duration_seconds";
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The process's Prometheus handle, installing the recorder on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(DURATION_METRIC.to_owned()), DURATION_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            installed.unwrap_or_else(|error| {
                // Another recorder owns the process: /metrics stays empty rather than failing.
                tracing::warn!(%error, "metrics recorder not installed; /metrics will be empty");
                PrometheusBuilder::new().build_recorder().handle()
            })
        })
        .clone()
}

/// The span of one request: its id (from `x-request-id`, set before this runs) and, once
/// authenticated, the API key's label (or a token's user id), the token's issuer and the
/// organisation. No headers, bodies or query text.
pub fn request_span(request: &Request) -> Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
        api_key = tracing::field::Empty,
        issuer = tracing::field::Empty,
        org = tracing::field::Empty,
    )
}

/// Counts requests and records their latency, per method, route template and status.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(REQUESTS_METRIC, "method" => method, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!(DURATION_METRIC, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Standard methods by name; anything a client invents as `other`, to bound label values.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];
    STANDARD
        .into_iter()
        .find(|standard| *standard == method.as_str())
        .unwrap_or("other")
}
