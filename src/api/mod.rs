//! The HTTP API: JSON over axum, authenticated by API key or a trusted issuer's token, every
//! answer limited to what the caller's organisation may read.
//!
//! [`router`] builds the whole application (routes, middleware, state) and is what both
//! [`serve`] and the tests run; nothing here decides access, which is the
//! [`Service`](crate::service::Service)'s job, so the HTTP layer only authenticates, validates
//! the shape of requests, and maps errors to status codes.
//!
//! Middleware, outermost first:
//! 1. a request id (`x-request-id`, kept when the client sends one, else a UUID), then a trace
//!    span carrying it, then the id copied to the response;
//! 2. per-route request counts and latency histograms (`/metrics`);
//! 3. on the audited routes (ask, search, compare, similar, passages, upload, delete, export):
//!    the audit record, written after the handler and before the response (`audit.rs`; with
//!    `audit.required` a record that cannot be written turns the response into a 503);
//! 4. a default body limit of `server.max_json_bytes` (413 beyond it);
//! 5. on every route but the upload: the request timeout `server.request_timeout_ms` (504);
//!    a streamed answer gets the same deadline for its whole stream (see `stream.rs`);
//! 6. on `/v1/search`, `/v1/ask`, `/v1/compare` and `/v1/similar`: at most
//!    `server.max_concurrent_queries` at once, shared by all four, and load shedding beyond that (503 at once rather than a queue); a query's slot is
//!    held until its response body has been sent, so a streamed answer counts for its whole life;
//! 7. on the upload: the caller's role is checked before the body is read; at most
//!    `server.max_concurrent_uploads` at once (503 beyond), each within
//!    `server.upload_timeout_ms` (504, and nothing is stored), and a body limit of
//!    `server.max_upload_bytes` instead of the JSON one; on `/v1/export`, a body limit of
//!    2 MiB (a comparison with its citations outgrows the JSON limit);
//! 8. in every handler that authenticates its caller (`auth.rs`): the caller's and its
//!    organisation's rate limits (`[rate_limits]`, 429 with `Retry-After`).
//!
//! Serving locally, e.g. from a test or the CLI:
//!
//! ```no_run
//! # async fn run(config: hikitsugi::config::Config) -> anyhow::Result<()> {
//! let service = hikitsugi::service::Service::open(config)?;
//! hikitsugi::api::serve(service).await
//! # }
//! ```

mod admit;
mod audit;
mod auth;
mod error;
mod extract;
mod handlers;
mod limits;
mod observe;
mod openapi;
mod session;
mod stream;
mod web;
pub mod wire;
mod workbench;

pub use openapi::openapi;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{Router, middleware};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower::timeout::TimeoutLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::access::{Directory, KeyRing};
use crate::audit::AuditTrail;
use crate::identity::{UsedAssertions, Verifier};
use crate::service::Service;

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
struct AppState {
    service: Service,
    keys: Arc<KeyRing>,
    /// The trusted issuers, for bearer tokens and portal sign-ins.
    identity: Arc<Verifier>,
    /// The `jti` of every portal sign-in, so each opens one session.
    used_assertions: Arc<UsedAssertions>,
    rate_limits: Arc<limits::RateLimits>,
    /// Where audited requests leave their records.
    audit: Arc<AuditTrail>,
    openapi: Arc<utoipa::openapi::OpenApi>,
    metrics: PrometheusHandle,
    /// Slots for searches and answers (`server.max_concurrent_queries`).
    queries: Arc<Semaphore>,
    /// Slots for uploads (`server.max_concurrent_uploads`).
    uploads: Arc<Semaphore>,
    names: wire::Names,
    sessions: Arc<session::Sessions>,
    /// SHA-256 of the key `/metrics` wants, when one is configured.
    metrics_key: Option<[u8; 32]>,
}

/// The whole HTTP application for `service`, ready for [`axum::serve`].
pub fn router(service: Service) -> Router {
    let server = service.config.server.clone();
    let directory = crate::service::directory(&service.config);
    let state = AppState {
        keys: Arc::new(key_ring(&service.config, &directory)),
        identity: Arc::new(Verifier::new(&service.config, &directory)),
        used_assertions: Arc::new(UsedAssertions::default()),
        rate_limits: Arc::new(limits::RateLimits::new(&service.config.rate_limits)),
        audit: Arc::new(AuditTrail::new(
            service.metadata().clone(),
            &service.config.audit,
        )),
        openapi: Arc::new(openapi()),
        metrics: observe::metrics_handle(),
        queries: Arc::new(Semaphore::new(server.max_concurrent_queries)),
        uploads: Arc::new(Semaphore::new(server.max_concurrent_uploads)),
        names: wire::Names::from_config(&service.config),
        sessions: Arc::new(session::Sessions::new(Duration::from_secs(
            server.session_ttl_minutes * 60,
        ))),
        metrics_key: server.metrics_key_sha256.as_deref().and_then(|hash| {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(hash, &mut bytes).ok().map(|()| bytes)
        }),
        service,
    };

    let admission = middleware::from_fn_with_state(state.clone(), admit::query);
    let timeout = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(error::middleware_error))
        .layer(TimeoutLayer::new(Duration::from_millis(
            server.request_timeout_ms,
        )));

    let queries = Router::new()
        .route("/v1/search", post(handlers::search))
        .route("/v1/ask", post(handlers::ask))
        .route("/v1/compare", post(workbench::compare))
        .route("/v1/similar", post(workbench::similar))
        .route_layer(admission);
    let timed = Router::new()
        .merge(queries)
        .route("/v1/documents", get(handlers::list_documents))
        .route("/v1/passages", get(handlers::passages))
        .route("/v1/facets", get(workbench::facets))
        .route(
            "/v1/export",
            post(workbench::export).layer(DefaultBodyLimit::max(workbench::MAX_EXPORT_BYTES)),
        )
        .route(
            "/v1/feedback",
            get(handlers::list_feedback).post(handlers::give_feedback),
        )
        .route("/v1/audit", get(audit::list))
        .route("/v1/documents/{*doc_id}", delete(handlers::delete_document))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(handlers::openapi_json))
        .route("/", get(web::index))
        .route("/app.js", get(web::script))
        .route("/app.css", get(web::style))
        .route("/auth/session", get(web::current).post(web::sign_in))
        .route("/auth/assertion", post(web::sign_in_with_assertion))
        .route("/auth/logout", post(web::sign_out))
        .route_layer(timeout);

    Router::new()
        .merge(timed)
        .route(
            "/v1/documents",
            post(handlers::upload_document).layer(DefaultBodyLimit::max(server.max_upload_bytes)),
        )
        .fallback(handlers::unknown_route)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(observe::request_span)
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(middleware::from_fn(observe::track))
                .layer(middleware::from_fn_with_state(state.clone(), audit::record))
                .layer(DefaultBodyLimit::max(server.max_json_bytes)),
        )
        .with_state(state)
}

/// The configured API keys, each with its principal.
fn key_ring(config: &crate::config::Config, directory: &Directory) -> KeyRing {
    KeyRing::new(config.api_keys.iter().filter_map(|key| {
        let principal = directory.member(&key.org, key.role)?;
        Some((key.sha256.clone(), key.label.clone(), principal))
    }))
}

/// Serves the API on `server.listen` until Ctrl-C or SIGTERM, then lets requests in flight finish.
pub async fn serve(service: Service) -> anyhow::Result<()> {
    let listen = service.config.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener
        .local_addr()
        .context("the listening socket has no address")?;
    tracing::info!(%address, "serving the HTTP API");
    let app = router(service.clone());
    let pruning = tokio::spawn(prune_daily(AuditTrail::new(
        service.metadata().clone(),
        &service.config.audit,
    )));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed");
    pruning.abort();
    served?;
    tracing::info!("HTTP API stopped");
    Ok(())
}

/// Deletes audit records past `audit.retention_days` now, then once a day. A failed pruning is
/// logged and tried again the next day.
async fn prune_daily(trail: AuditTrail) {
    let trail = Arc::new(trail);
    let mut daily = tokio::time::interval(crate::audit::PRUNE_INTERVAL);
    loop {
        // The first tick is immediate: pruning at start.
        daily.tick().await;
        let pruning = trail.clone();
        match tokio::task::spawn_blocking(move || pruning.prune()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "cannot prune the audit trail"),
            Err(error) => tracing::error!(%error, "the audit pruning task failed"),
        }
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM. A signal that cannot be listened for is logged and
/// never fires; the other still does.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
