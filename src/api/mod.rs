//! The HTTP API: JSON over axum, authenticated by API key, every answer limited to what the
//! caller's organisation may read.
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
//! 3. a default body limit of `server.max_json_bytes` (413 beyond it);
//! 4. on every route but the upload: the request timeout `server.request_timeout_ms` (504);
//!    uploads are exempt because embedding a long document takes longer, and a timed-out upload
//!    would still be stored;
//! 5. on `/v1/search` and `/v1/ask`: at most `server.max_concurrent_queries` at once, shared by
//!    both, and load shedding beyond that (503 at once rather than a queue);
//! 6. on the upload: a body limit of `server.max_upload_bytes` instead of the JSON one.
//!
//! Serving locally, e.g. from a test or the CLI:
//!
//! ```no_run
//! # async fn run(config: hikitsugi::config::Config) -> anyhow::Result<()> {
//! let service = hikitsugi::service::Service::open(config)?;
//! hikitsugi::api::serve(service).await
//! # }
//! ```

mod auth;
mod error;
mod extract;
mod handlers;
mod observe;
mod openapi;
mod stream;
pub mod wire;

pub use openapi::openapi;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{Router, middleware};
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::access::KeyRing;
use crate::service::Service;

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
struct AppState {
    service: Service,
    keys: Arc<KeyRing>,
    openapi: Arc<utoipa::openapi::OpenApi>,
    metrics: PrometheusHandle,
}

/// The whole HTTP application for `service`, ready for [`axum::serve`].
pub fn router(service: Service) -> Router {
    let server = service.config.server.clone();
    let state = AppState {
        keys: Arc::new(KeyRing::from_config(&service.config)),
        openapi: Arc::new(openapi()),
        metrics: observe::metrics_handle(),
        service,
    };

    let admission = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(error::middleware_error))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::new(
            server.max_concurrent_queries,
        ));
    let timeout = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(error::middleware_error))
        .layer(TimeoutLayer::new(Duration::from_millis(
            server.request_timeout_ms,
        )));

    let queries = Router::new()
        .route("/v1/search", post(handlers::search))
        .route("/v1/ask", post(handlers::ask))
        .route_layer(admission);
    let timed = Router::new()
        .merge(queries)
        .route("/v1/documents", get(handlers::list_documents))
        .route("/v1/documents/{*doc_id}", delete(handlers::delete_document))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(handlers::openapi_json))
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
                .layer(DefaultBodyLimit::max(server.max_json_bytes)),
        )
        .with_state(state)
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
    axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    tracing::info!("HTTP API stopped");
    Ok(())
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
