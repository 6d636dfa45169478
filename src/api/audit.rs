//! The audit trail's HTTP side (see [`crate::audit`]): a middleware around the audited routes
//! and `GET /v1/audit`.
//!
//! The middleware gives each audited request an [`AuditNote`] in its extensions. The caller's
//! authentication (`auth.rs`) writes who is calling into it, and the handler what was asked
//! and which documents it returned or cited; once the handler has answered, the middleware
//! adds the status and latency and writes the record, before a byte of the response leaves.
//! A request refused before its caller is known (401) leaves no record (the log has it); one
//! refused later (rate limit, bad body, 403, 404, timeout) leaves one with its status. A
//! streamed answer's record is written before its first event and completed, with the
//! documents it cited, before its final `answer` event. An upload or a delete writes its
//! record ahead, before it changes anything ([`AuditNote::before_change`]; status
//! [`CHANGE_UNDER_WAY`]), and the middleware completes it: a required audit refuses a change it
//! cannot record, and never a change already made.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{Extensions, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::wire::{
    AskResponse, AuditList, AuditQuery, CompareResponse, ExportRequest, Mode, SearchResponse,
    SimilarResponse,
};
use crate::access::{Actor, Role};
use crate::audit::AuditTrail;
use crate::generate::AskEvent;
use crate::metadata::{AuditFilter, AuditRecord, AuditedDocument, Operation};

const AUDIT_FAILURES_METRIC: &str = "hikitsugi_audit_failures_total";
/// Records `GET /v1/audit` returns unless asked for fewer, and the most it returns.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// The status of a record written ahead of a change, until the change's outcome replaces it;
/// a record left with it names a change whose process stopped before answering.
pub const CHANGE_UNDER_WAY: u16 = 0;

/// The audited operation of a route, if it is one.
fn operation_of(method: &Method, path: &str) -> Option<Operation> {
    Some(match (method.as_str(), path) {
        ("POST", "/v1/ask") => Operation::Ask,
        ("POST", "/v1/search") => Operation::Search,
        ("POST", "/v1/compare") => Operation::Compare,
        ("POST", "/v1/similar") => Operation::Similar,
        ("GET", "/v1/passages") => Operation::Passages,
        ("POST", "/v1/documents") => Operation::Upload,
        ("DELETE", path) if path.starts_with("/v1/documents/") => Operation::Delete,
        ("POST", "/v1/export") => Operation::Export,
        _ => return None,
    })
}

/// What one request tells its audit record; a no-op on routes that are not audited.
#[derive(Clone, Default)]
pub struct AuditNote(Option<Arc<Mutex<Noted>>>);

struct Noted {
    /// The record's id, known before it is written (a streamed answer completes it later).
    id: String,
    operation: Operation,
    request_id: String,
    at_ms: i64,
    started: Instant,
    /// Whether [`AuditNote::before_change`] wrote the record.
    written_ahead: bool,
    caller: Option<(String, Actor)>,
    question: Option<String>,
    documents: Vec<AuditedDocument>,
    mode: Option<Mode>,
    found: Option<bool>,
}

impl AuditNote {
    fn new(operation: Operation, request_id: String) -> Self {
        Self(Some(Arc::new(Mutex::new(Noted {
            id: uuid::Uuid::now_v7().to_string(),
            operation,
            request_id,
            at_ms: crate::audit::now_ms(),
            started: Instant::now(),
            written_ahead: false,
            caller: None,
            question: None,
            documents: Vec::new(),
            mode: None,
            found: None,
        }))))
    }

    /// The note the middleware put in a request's extensions.
    pub(super) fn of(extensions: &Extensions) -> Self {
        extensions.get::<Self>().cloned().unwrap_or_default()
    }

    fn with<T>(&self, change: impl FnOnce(&mut Noted) -> T) -> Option<T> {
        // A note is plain data: one a panic left half written is still worth recording.
        self.0
            .as_ref()
            .map(|noted| change(&mut noted.lock().unwrap_or_else(PoisonError::into_inner)))
    }

    pub(super) fn caller(&self, org: &str, actor: &Actor) {
        self.with(|noted| noted.caller = Some((org.to_owned(), actor.clone())));
    }

    /// The question, query or draft (kept as `audit.questions` says).
    pub fn question(&self, question: &str) {
        self.with(|noted| noted.question = Some(question.to_owned()));
    }

    /// A document returned (`cited: false`) or cited; each document version once, cited if
    /// any mention cites it.
    pub fn document(&self, doc_id: &str, version: Option<&str>, cited: bool) {
        self.with(|noted| add_document(&mut noted.documents, doc_id, version, cited));
    }

    fn answer(&self, mode: Mode, found: bool) {
        self.with(|noted| {
            noted.mode = Some(mode);
            noted.found = Some(found);
        });
    }

    pub fn searched(&self, response: &SearchResponse) {
        for passage in &response.passages {
            self.document(&passage.doc_id, Some(&passage.version), false);
        }
    }

    /// An answer's citations are cited when it found an answer, else only returned (the
    /// closest passages).
    pub fn asked(&self, response: &AskResponse) {
        for citation in &response.citations {
            self.document(&citation.doc_id, Some(&citation.version), response.found);
        }
        self.answer(response.mode, response.found);
    }

    /// As [`Self::asked`] per group and for the synthesis; the mode is `generated` when any
    /// group's is, found when any group found an answer.
    pub fn compared(&self, response: &CompareResponse) {
        for group in &response.groups {
            for citation in &group.citations {
                self.document(&citation.doc_id, Some(&citation.version), group.found);
            }
        }
        if let Some(synthesis) = &response.synthesis {
            for cited in &synthesis.citations {
                let citation = &cited.citation;
                self.document(&citation.doc_id, Some(&citation.version), synthesis.found);
            }
        }
        let generated = response
            .groups
            .iter()
            .any(|group| group.mode == Mode::Generated);
        self.answer(
            if generated {
                Mode::Generated
            } else {
                Mode::Extractive
            },
            response.groups.iter().any(|group| group.found),
        );
    }

    pub fn similar(&self, response: &SimilarResponse) {
        let grouped = response
            .groups
            .iter()
            .flatten()
            .flat_map(|group| &group.passages);
        for found in response.passages.iter().chain(grouped) {
            self.document(&found.passage.doc_id, Some(&found.passage.version), false);
        }
    }

    /// The question and the cited documents an export body names (when its citations carry
    /// their ids, as `/v1/ask` and `/v1/compare` responses do).
    pub fn exported(&self, request: &ExportRequest) {
        self.question(&request.question);
        let citations = request
            .citations
            .iter()
            .chain(request.groups.iter().flat_map(|group| &group.citations))
            .chain(
                request
                    .synthesis
                    .iter()
                    .flat_map(|synthesis| &synthesis.citations),
            );
        for citation in citations {
            if let Some(doc_id) = &citation.doc_id {
                self.document(doc_id, citation.version.as_deref(), true);
            }
        }
    }

    /// The record with `status`; `None` when the caller never was known.
    fn to_record(&self, trail: &AuditTrail, status: u16) -> Option<AuditRecord> {
        self.with(|noted| {
            let (org, actor) = noted.caller.as_ref()?;
            Some(AuditRecord {
                id: noted.id.clone(),
                at_ms: noted.at_ms,
                request_id: noted.request_id.clone(),
                org: org.clone(),
                actor: actor.user_id(),
                issuer: actor.issuer().map(str::to_owned),
                operation: noted.operation,
                question: noted
                    .question
                    .as_deref()
                    .and_then(|question| trail.kept_question(question)),
                documents: noted.documents.clone(),
                mode: noted.mode.map(|mode| mode_name(mode).to_owned()),
                found: noted.found,
                status,
                latency_ms: elapsed_ms(noted.started),
            })
        })
        .flatten()
    }

    fn is_written_ahead(&self) -> bool {
        self.with(|noted| noted.written_ahead).unwrap_or(false)
    }

    /// Writes the record before an upload or delete changes anything, with the status
    /// [`CHANGE_UNDER_WAY`]; the middleware replaces it with the outcome. When it cannot be
    /// written and `audit.required` is set, the change must not be made: this is the refusal.
    pub(super) async fn before_change(&self, trail: &Arc<AuditTrail>) -> Result<(), ApiError> {
        let Some(record) = self.to_record(trail, CHANGE_UNDER_WAY) else {
            return Ok(());
        };
        let writer = trail.clone();
        match tokio::task::spawn_blocking(move || writer.record(&record)).await {
            Ok(Ok(())) => {
                self.with(|noted| noted.written_ahead = true);
                Ok(())
            }
            Ok(Err(error)) => refuse_if_required(trail, &error.to_string()),
            Err(error) => refuse_if_required(trail, &error.to_string()),
        }
    }

    /// `events` of a streamed answer, completing this request's record with the answer's
    /// documents, mode and latency before the final `answer` event goes out.
    pub(super) fn completing_stream(
        &self,
        trail: Arc<AuditTrail>,
        events: impl Stream<Item = AskEvent> + Send + 'static,
    ) -> impl Stream<Item = AskEvent> + Send + 'static {
        let id = self.with(|noted| noted.id.clone());
        let started = Instant::now();
        events.then(move |event| {
            let id = id.clone();
            let trail = trail.clone();
            async move {
                if let (Some(id), AskEvent::Answer(answer)) = (id, &event) {
                    let mut documents = Vec::new();
                    for scored in &answer.citations {
                        let document = &scored.chunk.document;
                        add_document(
                            &mut documents,
                            &document.doc_id,
                            Some(&document.version),
                            answer.found,
                        );
                    }
                    let mode = Mode::from(answer.mode);
                    let found = answer.found;
                    let latency_ms = elapsed_ms(started);
                    let completed = tokio::task::spawn_blocking(move || {
                        trail.store().complete_audit(
                            &id,
                            &documents,
                            Some(mode_name(mode)),
                            Some(found),
                            latency_ms,
                        )
                    })
                    .await;
                    match completed {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => audit_failed(&error.to_string()),
                        Err(error) => audit_failed(&error.to_string()),
                    }
                }
                event
            }
        })
    }
}

/// Adds a document version to `documents` once; cited if any mention cites it.
fn add_document(
    documents: &mut Vec<AuditedDocument>,
    doc_id: &str,
    version: Option<&str>,
    cited: bool,
) {
    match documents
        .iter_mut()
        .find(|known| known.doc_id == doc_id && known.version.as_deref() == version)
    {
        Some(known) => known.cited |= cited,
        None => documents.push(AuditedDocument {
            doc_id: doc_id.to_owned(),
            version: version.map(str::to_owned),
            cited,
        }),
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Generated => "generated",
        Mode::Extractive => "extractive",
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn audit_failed(error: &str) {
    metrics::counter!(AUDIT_FAILURES_METRIC).increment(1);
    tracing::error!(%error, "an audit record was not written");
}

fn refuse_if_required(trail: &AuditTrail, error: &str) -> Result<(), ApiError> {
    audit_failed(error);
    if trail.is_required() {
        tracing::warn!("request refused: its audit record could not be written (audit.required)");
        return Err(ApiError::AuditUnavailable);
    }
    Ok(())
}

/// Writes the record of an audited request after its handler and before its response; with
/// `audit.required`, a record that cannot be written refuses the request.
pub(super) async fn record(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let operation = operation_of(request.method(), request.uri().path());
    let Some(operation) = operation.filter(|_| state.audit.is_enabled()) else {
        return next.run(request).await;
    };
    // Set by the request-id layer before this runs.
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let note = AuditNote::new(operation, request_id);
    request.extensions_mut().insert(note.clone());
    let response = next.run(request).await;
    let Some(record) = note.to_record(&state.audit, response.status().as_u16()) else {
        return response;
    };
    let trail = state.audit.clone();
    let written_ahead = note.is_written_ahead();
    let write = move || {
        if written_ahead {
            trail.complete_written_ahead(&record)
        } else {
            trail.record(&record)
        }
    };
    let error = match tokio::task::spawn_blocking(write).await {
        Ok(Ok(())) => return response,
        Ok(Err(error)) => error.to_string(),
        Err(error) => error.to_string(),
    };
    if written_ahead {
        // The change may have been made, and the record written ahead names it: a 503 now
        // would tell the caller that nothing changed when something may have.
        audit_failed(&error);
        tracing::warn!("the outcome of a change was not recorded; its record written ahead stands");
        return response;
    }
    match refuse_if_required(&state.audit, &error) {
        Ok(()) => response,
        Err(refusal) => refusal.into_response(),
    }
}

/// The audit trail of the caller's organisation (admins only), newest first: who asked what,
/// and which documents answered. Questions appear as `audit.questions` keeps them.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "Records of the caller's organisation, newest first", body = AuditList),
        (status = 400, description = "Bad query parameters", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
#[tracing::instrument(name = "list_audit", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditList>, ApiError> {
    if caller.principal.role() < Role::Admin {
        return Err(ApiError::Forbidden);
    }
    let Query(query) = query.map_err(|rejection| ApiError::InvalidRequest {
        message: format!(
            "クエリパラメーターが正しくありません: {}",
            rejection.body_text()
        ),
    })?;
    let since_ms = match query.since.as_deref() {
        Some(since) => Some(crate::audit::parse_since(since).ok_or_else(|| {
            ApiError::InvalidRequest {
                message: "since は 2025-04-01 のような日付か、RFC 3339 の時刻で指定してください。"
                    .to_owned(),
            }
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidRequest {
            message: format!("limit は1以上{MAX_LIMIT}以下にしてください。"),
        });
    }
    let filter = AuditFilter {
        org: Some(caller.principal.org().to_owned()),
        actor: query.user,
        doc_id: query.doc_id,
        operation: query.operation,
        since_ms,
        question: None,
        limit,
    };
    let trail = state.audit.clone();
    let records = tokio::task::spawn_blocking(move || trail.records(&filter))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(Json(AuditList {
        records: records.into_iter().map(Into::into).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audited_routes_are_the_reads_answers_and_changes() {
        let audited = |method: Method, path: &str| operation_of(&method, path);
        assert_eq!(audited(Method::POST, "/v1/ask"), Some(Operation::Ask));
        assert_eq!(
            audited(Method::DELETE, "/v1/documents/uploads/a/b.md"),
            Some(Operation::Delete)
        );
        assert_eq!(
            audited(Method::GET, "/v1/passages"),
            Some(Operation::Passages)
        );
        assert_eq!(
            audited(Method::POST, "/v1/documents"),
            Some(Operation::Upload)
        );
        assert_eq!(audited(Method::GET, "/v1/documents"), None);
        assert_eq!(audited(Method::GET, "/v1/audit"), None);
        assert_eq!(audited(Method::POST, "/v1/feedback"), None);
    }

    #[test]
    fn a_document_is_noted_once_per_version_and_cited_if_any_mention_cites_it() {
        let note = AuditNote::new(Operation::Ask, "request".to_owned());
        note.document("a.txt", Some("v1"), false);
        note.document("a.txt", Some("v1"), true);
        note.document("a.txt", Some("v2"), false);
        let documents = note
            .with(|noted| noted.documents.clone())
            .unwrap_or_default();
        assert_eq!(documents.len(), 2);
        assert!(documents[0].cited && !documents[1].cited);
        // Off the audited routes, noting does nothing.
        AuditNote::default().question("x");
    }
}
