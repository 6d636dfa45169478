//! The API's errors: every failure becomes `{"error": {"code", "message"}}`, with a stable English
//! `code` for programs and a Japanese `message` for people. Only this module picks status codes.
//! Server-side failures say nothing internal in the body; the log gets the whole error chain.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tower::BoxError;
use utoipa::ToSchema;

use crate::service::ServiceError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no API key was presented")]
    MissingKey,
    #[error("the presented API key is unknown")]
    UnknownKey,
    #[error("the session cookie names no live session")]
    SessionExpired,
    #[error("a state-changing request of a session lacks its CSRF token")]
    CsrfMismatch,
    #[error("invalid request: {message}")]
    InvalidRequest { message: String },
    #[error("the request body is not declared as JSON")]
    NotJson,
    #[error("the caller's role or organisation does not allow this")]
    Forbidden,
    #[error("no such document in the caller's scope")]
    DocumentNotFound,
    #[error("no such route")]
    UnknownRoute,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("the request body exceeds {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("no query slot is free")]
    Overloaded,
    #[error(
        "the caller's or its organisation's rate limit is spent; retry in {retry_after_secs} s"
    )]
    RateLimited { retry_after_secs: u64 },
    #[error("the request took longer than the configured timeout")]
    Timeout,
    #[error("the request's audit record cannot be written and audit.required is set")]
    AuditUnavailable,
    #[error("internal error: {source}")]
    Internal { source: BoxError },
}

/// The `code` of an error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Unauthorized,
    InvalidRequest,
    UnsupportedMediaType,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    Overloaded,
    RateLimited,
    Timeout,
    AuditUnavailable,
    Internal,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people, in Japanese.
    pub message: String,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::MissingKey | Self::UnknownKey | Self::SessionExpired => StatusCode::UNAUTHORIZED,
            Self::CsrfMismatch => StatusCode::FORBIDDEN,
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::DocumentNotFound | Self::UnknownRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            Self::MissingKey | Self::UnknownKey | Self::SessionExpired => ErrorCode::Unauthorized,
            Self::CsrfMismatch => ErrorCode::Forbidden,
            Self::InvalidRequest { .. } => ErrorCode::InvalidRequest,
            Self::NotJson => ErrorCode::UnsupportedMediaType,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::DocumentNotFound | Self::UnknownRoute => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::Overloaded => ErrorCode::Overloaded,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Timeout => ErrorCode::Timeout,
            Self::AuditUnavailable => ErrorCode::AuditUnavailable,
            Self::Internal { .. } => ErrorCode::Internal,
        }
    }

    pub(super) fn message(&self) -> String {
        match self {
            Self::MissingKey => {
                "APIキーが必要です。Authorization: Bearer <APIキー> ヘッダー（または X-API-Key ヘッダー）で指定してください。"
                    .to_owned()
            }
            Self::UnknownKey => "APIキーが正しくありません。".to_owned(),
            Self::SessionExpired => {
                "セッションの有効期限が切れました。もう一度サインインしてください。".to_owned()
            }
            Self::CsrfMismatch => {
                "画面の情報が古くなっています。ページを再読み込みしてから、もう一度操作してください。"
                    .to_owned()
            }
            Self::InvalidRequest { message } => message.clone(),
            Self::NotJson => "Content-Type: application/json で送ってください。".to_owned(),
            Self::Forbidden => "この操作を行う権限がありません。".to_owned(),
            // The same words whether the document does not exist or the caller may not read it.
            Self::DocumentNotFound => "指定された文書は見つかりません。".to_owned(),
            Self::UnknownRoute => "このURLにAPIはありません。".to_owned(),
            Self::MethodNotAllowed => "このURLではそのHTTPメソッドは使えません。".to_owned(),
            Self::PayloadTooLarge { limit_bytes } => {
                format!("リクエストの本文が大きすぎます（上限 {limit_bytes} バイト）。")
            }
            Self::Overloaded => "混み合っています。しばらくしてから再度お試しください。".to_owned(),
            Self::RateLimited { retry_after_secs } => format!(
                "リクエストが多すぎます。{retry_after_secs} 秒ほど待ってから再度お試しください。"
            ),
            Self::Timeout => "処理が時間内に終わりませんでした。しばらくしてから再度お試しください。".to_owned(),
            Self::AuditUnavailable => {
                "監査記録を書き込めないため、このリクエストは処理できません。しばらくしてから再度お試しください。"
                    .to_owned()
            }
            Self::Internal { .. } => {
                "サーバー内部でエラーが発生しました。しばらくしてから再度お試しください。".to_owned()
            }
        }
    }

    /// A server-side failure, for the log only.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::Internal {
            source: source.into(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::InvalidRequest(message) => Self::InvalidRequest { message },
            ServiceError::Forbidden => Self::Forbidden,
            ServiceError::NotFound => Self::DocumentNotFound,
            ServiceError::Cancelled | ServiceError::Index(crate::index::IndexError::Abandoned) => {
                Self::Timeout
            }
            ServiceError::Retrieve(crate::retrieve::RetrieveError::Embed(
                crate::embed::EmbedError::Busy(_),
            ))
            | ServiceError::Index(crate::index::IndexError::Embed(
                crate::embed::EmbedError::Busy(_),
            )) => Self::Overloaded,
            // Upload parse failures arrive as `InvalidRequest`; whatever reaches these is ours.
            error @ (ServiceError::Retrieve(_)
            | ServiceError::Store(_)
            | ServiceError::Index(_)
            | ServiceError::Task(_)
            | ServiceError::Metadata(_)) => Self::internal(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal { source } = &self {
            tracing::error!(error = %ErrorChain(source.as_ref()), "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.message(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Self::MissingKey => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::UnknownKey => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            Self::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Self::SessionExpired
            | Self::CsrfMismatch
            | Self::InvalidRequest { .. }
            | Self::NotJson
            | Self::Forbidden
            | Self::DocumentNotFound
            | Self::UnknownRoute
            | Self::MethodNotAllowed
            | Self::PayloadTooLarge { .. }
            | Self::Timeout
            | Self::AuditUnavailable
            | Self::Internal { .. } => {}
        }
        response
    }
}

/// Turns the errors of the tower middleware (load shedding, timeout) into API errors.
pub async fn middleware_error(error: BoxError) -> ApiError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded
    } else if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout
    } else {
        ApiError::Internal { source: error }
    }
}

/// An error and its sources, `: `-separated, for one log field.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(formatter, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        (status, serde_json::from_slice(&bytes).expect("a JSON body"))
    }

    #[tokio::test]
    async fn service_errors_keep_user_messages_and_hide_internal_ones() {
        let (status, body) =
            body_of(ServiceError::InvalidRequest("質問が空です。".to_owned()).into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            serde_json::json!({ "error": { "code": "invalid_request", "message": "質問が空です。" } })
        );

        let (status, body) =
            body_of(ServiceError::Task("secret path /srv/data panicked".to_owned()).into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("/srv/data"), "{body}");

        assert_eq!(
            body_of(ServiceError::Forbidden.into()).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            body_of(ServiceError::NotFound.into()).await.0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn a_rate_limited_request_says_when_to_retry() {
        let response = ApiError::RateLimited {
            retry_after_secs: 7,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let (_, body) = body_of(ApiError::RateLimited {
            retry_after_secs: 7,
        })
        .await;
        assert_eq!(body["error"]["code"], "rate_limited");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("7 秒")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn middleware_failures_become_overloaded_and_timeout() {
        let overloaded =
            middleware_error(Box::new(tower::load_shed::error::Overloaded::new())).await;
        let response = overloaded.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));

        let elapsed = middleware_error(Box::new(tower::timeout::error::Elapsed::new())).await;
        assert_eq!(
            body_of(elapsed).await,
            (
                StatusCode::GATEWAY_TIMEOUT,
                serde_json::json!({ "error": { "code": "timeout", "message": ApiError::Timeout.message() } })
            )
        );
    }
}
