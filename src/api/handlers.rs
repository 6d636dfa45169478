//! One function per route. Each authenticates, hands the work to [`Service`](crate::service::Service)
//! and converts the result into wire types; status codes come only from [`ApiError`].

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::wire::{
    AskRequest, AskResponse, Document, DocumentsResponse, Probe, SearchRequest, SearchResponse,
    UploadForm,
};

/// Passages for a query, from the documents the caller may read.
#[utoipa::path(
    post,
    path = "/v1/search",
    tag = "search",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "Passages, best first", body = SearchResponse),
        (status = 400, description = "Empty or too long query, top_k out of range, malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 413, description = "Body over the JSON limit", body = ErrorBody),
        (status = 503, description = "Too many queries at once", body = ErrorBody),
        (status = 504, description = "Took longer than the request timeout", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[tracing::instrument(name = "search", skip_all)]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    let filters = request.filters.map(Into::into).unwrap_or_default();
    let searched = state
        .service
        .search(
            caller.principal.scope(),
            &request.query,
            request.top_k,
            filters,
        )
        .await?;
    Ok(Json(searched.into()))
}

/// An answer with numbered citations, from the documents the caller may read.
#[utoipa::path(
    post,
    path = "/v1/ask",
    tag = "search",
    request_body = AskRequest,
    responses(
        (status = 200, description = "The answer and the passages it cites", body = AskResponse),
        (status = 400, description = "Empty or too long question, top_k out of range, malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 413, description = "Body over the JSON limit", body = ErrorBody),
        (status = 503, description = "Too many queries at once", body = ErrorBody),
        (status = 504, description = "Took longer than the request timeout", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[tracing::instrument(name = "ask", skip_all)]
pub async fn ask(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<AskRequest>,
) -> Result<Json<AskResponse>, ApiError> {
    let answered = state
        .service
        .ask(caller.principal.scope(), &request.question, request.top_k)
        .await?;
    Ok(Json(answered.into()))
}

/// The documents the caller may read.
#[utoipa::path(
    get,
    path = "/v1/documents",
    tag = "documents",
    responses(
        (status = 200, description = "Readable documents, ordered by id", body = DocumentsResponse),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[tracing::instrument(name = "list_documents", skip_all)]
pub async fn list_documents(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<DocumentsResponse>, ApiError> {
    let documents = state.service.documents(caller.principal.scope()).await?;
    Ok(Json(documents.into()))
}

/// Stores a document owned by the caller's organisation (editors only). Not subject to the
/// request timeout: embedding a long document takes a while.
#[utoipa::path(
    post,
    path = "/v1/documents",
    tag = "documents",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored; the document as listed", body = Document),
        (status = 400, description = "Unsupported file type, unreadable file, or malformed form", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "The key's role is not editor or admin", body = ErrorBody),
        (status = 413, description = "Body over the upload limit", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[tracing::instrument(name = "upload_document", skip_all)]
pub async fn upload_document(
    State(state): State<AppState>,
    caller: Caller,
    form: UploadForm,
) -> Result<(StatusCode, Json<Document>), ApiError> {
    let metadata = form.metadata.unwrap_or_default();
    let document = state
        .service
        .upload(&caller.principal, form.file.name, form.file.bytes, metadata)
        .await?;
    tracing::info!(doc_id = %document.doc_id, chunks = document.chunk_count, "document uploaded");
    Ok((StatusCode::CREATED, Json(document.into())))
}

/// Deletes a document of the caller's organisation (editors only). A document the caller
/// cannot read gets the same 404 as one that does not exist.
#[utoipa::path(
    delete,
    path = "/v1/documents/{doc_id}",
    tag = "documents",
    params(("doc_id" = String, Path, description = "The document id; may contain `/`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Readable, but the caller is not an editor of its owner", body = ErrorBody),
        (status = 404, description = "No such document among those the caller may read", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[tracing::instrument(name = "delete_document", skip_all)]
pub async fn delete_document(
    State(state): State<AppState>,
    caller: Caller,
    doc_id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(doc_id) = doc_id.map_err(|rejection| ApiError::InvalidRequest {
        message: format!("文書IDが正しくありません: {}", rejection.body_text()),
    })?;
    state
        .service
        .delete(&caller.principal, doc_id.clone())
        .await?;
    tracing::info!(%doc_id, "document deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Probe)))]
pub async fn healthz() -> Json<Probe> {
    Json(Probe {
        status: "ok",
        reason: None,
        store: None,
    })
}

/// Readiness: the model is loaded (it is whenever the service exists) and the store answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready for queries", body = Probe),
        (status = 503, description = "Not ready, with the reason", body = Probe),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Probe>) {
    let store = state.service.store.clone();
    let failure = match tokio::task::spawn_blocking(move || store.status()).await {
        Ok(Ok(status)) => {
            // A red collection (a failed shard) cannot answer every query correctly.
            if status.collection_status.as_deref() != Some("red") {
                return (
                    StatusCode::OK,
                    Json(Probe {
                        status: "ready",
                        reason: None,
                        store: Some(status.into()),
                    }),
                );
            }
            format!("the collection is red: {status:?}")
        }
        Ok(Err(error)) => error.to_string(),
        Err(error) => error.to_string(),
    };
    tracing::error!(error = %failure, "readiness check: the store does not answer");
    let probe = Probe {
        status: "not_ready",
        reason: Some("文書ストアが応答しません。"),
        store: None,
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(probe))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Histograms and summaries are drained here rather than by a background task.
    state.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", content_type = "application/json"))
)]
pub async fn openapi_json(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json(state.openapi.as_ref().clone())
}

/// Any path without a route.
pub async fn unknown_route() -> ApiError {
    ApiError::UnknownRoute
}

/// A route called with a method it does not have.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
