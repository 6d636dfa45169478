//! Routes of the coordinator's workbench: one question answered per group, passages like a
//! draft, counts for facet filters, and answers exported as Markdown or DOCX.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::wire::{
    CompareRequest, CompareResponse, ExportFormat, ExportQuery, ExportRequest, FacetsResponse,
    SimilarRequest, SimilarResponse,
};

/// Largest body `POST /v1/export` reads: a comparison's citations outgrow the JSON limit.
pub const MAX_EXPORT_BYTES: usize = 2 * 1024 * 1024;

/// One question answered per owning organisation, document or top-level section, each group
/// searched with its own filter inside what the caller may read; with `synthesis`, a verified
/// paragraph on what the groups have in common and where they differ.
#[utoipa::path(
    post,
    path = "/v1/compare",
    tag = "workbench",
    request_body = CompareRequest,
    responses(
        (status = 200, description = "One answer per group, in group order", body = CompareResponse),
        (status = 400, description = "Empty or too long question, unknown grouping, too many groups, `synthesis` without a language model, malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 503, description = "Too many queries at once", body = ErrorBody),
        (status = 504, description = "Took longer than the request timeout", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[tracing::instrument(name = "compare", skip_all)]
pub async fn compare(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CompareRequest>,
) -> Result<Json<CompareResponse>, ApiError> {
    caller.audit.question(&request.question);
    let compared = state
        .service
        .compare(caller.principal.scope(), request.into_request())
        .await?;
    let response = CompareResponse::new(compared, &state.names);
    caller.audit.compared(&response);
    Ok(Json(response))
}

/// Passages of the readable documents most like a draft paragraph, diversified (at most two
/// per document), each with the key terms it shares with the draft; with `group_by`, grouped
/// per owning organisation or document.
#[utoipa::path(
    post,
    path = "/v1/similar",
    tag = "workbench",
    request_body = SimilarRequest,
    responses(
        (status = 200, description = "Similar passages, best first", body = SimilarResponse),
        (status = 400, description = "Empty draft or longer than 5,000 characters, top_k or per_group out of range, per_group without group_by", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 503, description = "Too many queries at once", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[tracing::instrument(name = "similar", skip_all)]
pub async fn similar(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<SimilarRequest>,
) -> Result<Json<SimilarResponse>, ApiError> {
    caller.audit.question(&request.text);
    let found = state
        .service
        .similar(&caller.principal, request.into_request())
        .await?;
    let response = SimilarResponse::new(found, &state.names);
    caller.audit.similar(&response);
    Ok(Json(response))
}

/// Documents and passages the caller may read, counted per owner, kind and year.
#[utoipa::path(
    get,
    path = "/v1/facets",
    tag = "workbench",
    responses(
        (status = 200, description = "Counts inside the caller's scope", body = FacetsResponse),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[tracing::instrument(name = "facets", skip_all)]
pub async fn facets(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<FacetsResponse>, ApiError> {
    let facets = state.service.facets(caller.principal.scope()).await?;
    Ok(Json(FacetsResponse::new(facets, &state.names)))
}

/// An `/v1/ask` result (with its question) or a `/v1/compare` result as a file: Markdown, or
/// DOCX with each citation a footnote. Writes out only what the body holds; reads no document.
#[utoipa::path(
    post,
    path = "/v1/export",
    tag = "workbench",
    params(ExportQuery),
    request_body = ExportRequest,
    responses(
        (status = 200, description = "The file (`text/markdown` or DOCX)", content_type = "application/octet-stream"),
        (status = 400, description = "Unknown format, or a body that is neither result", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 413, description = "Body over 2 MiB", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[tracing::instrument(name = "export", skip_all)]
pub async fn export(
    caller: Caller,
    query: Result<Query<ExportQuery>, QueryRejection>,
    ApiJson(request): ApiJson<ExportRequest>,
) -> Result<Response, ApiError> {
    caller.audit.exported(&request);
    let Query(query) = query.map_err(|_| ApiError::InvalidRequest {
        message: "format は md か docx を指定してください（例: /v1/export?format=docx）。"
            .to_owned(),
    })?;
    let report = request
        .into_report()
        .map_err(|message| ApiError::InvalidRequest {
            message: message.to_owned(),
        })?;
    let (content_type, extension, bytes) = match query.format {
        ExportFormat::Md => (
            "text/markdown; charset=utf-8",
            "md",
            crate::export::markdown(&report).into_bytes(),
        ),
        ExportFormat::Docx => (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "docx",
            crate::export::docx(&report).map_err(|error| ApiError::Internal {
                source: error.into(),
            })?,
        ),
    };
    let disposition = format!("attachment; filename=\"hikitsugi-answer.{extension}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}
