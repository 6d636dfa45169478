//! Request bodies whose every failure is an [`ApiError`], so a bad body gets the same error shape
//! as any other failure.

use axum::Json;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use super::wire::{UploadForm, UploadedFile};

/// A JSON body (at most `server.max_json_bytes`), deserialised into `T`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            // Matched by status: the rejection enum is non-exhaustive, its statuses are not.
            Err(rejection) => Err(match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
                    limit_bytes: state.service.config.server.max_json_bytes,
                },
                StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::NotJson,
                _ => ApiError::InvalidRequest {
                    message: format!(
                        "リクエストの形式が正しくありません: {}",
                        rejection.body_text()
                    ),
                },
            }),
        }
    }
}

impl FromRequest<AppState> for UploadForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit_bytes = state.service.config.server.max_upload_bytes;
        let mut multipart = Multipart::from_request(request, state)
            .await
            .map_err(not_multipart)?;
        let mut file = None;
        let mut metadata = None;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|error| bad_part(error, limit_bytes))?
        {
            match field.name() {
                Some("file") if file.is_none() => file = Some(read_file(field, limit_bytes).await?),
                Some("metadata") if metadata.is_none() => {
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|error| bad_part(error, limit_bytes))?;
                    metadata = Some(serde_json::from_slice(&bytes).map_err(|error| {
                        ApiError::InvalidRequest {
                            message: format!("metadata パートが正しくありません: {error}"),
                        }
                    })?);
                }
                Some(name @ ("file" | "metadata")) => {
                    return Err(ApiError::InvalidRequest {
                        message: format!("{name} パートが複数あります。"),
                    });
                }
                name => {
                    return Err(ApiError::InvalidRequest {
                        message: format!(
                            "不明なパート {:?} があります。使えるのは file と metadata です。",
                            name.unwrap_or_default()
                        ),
                    });
                }
            }
        }
        let file = file.ok_or_else(|| ApiError::InvalidRequest {
            message: "file パート（アップロードする文書）がありません。".to_owned(),
        })?;
        Ok(Self { file, metadata })
    }
}

async fn read_file(field: Field<'_>, limit_bytes: usize) -> Result<UploadedFile, ApiError> {
    let name = field
        .file_name()
        .map(str::to_owned)
        .ok_or_else(|| ApiError::InvalidRequest {
            message: "file パートにファイル名（filename）がありません。".to_owned(),
        })?;
    let bytes = field
        .bytes()
        .await
        .map_err(|error| bad_part(error, limit_bytes))?;
    Ok(UploadedFile {
        name,
        bytes: bytes.to_vec(),
    })
}

fn not_multipart(rejection: MultipartRejection) -> ApiError {
    ApiError::InvalidRequest {
        message: format!(
            "multipart/form-data で送ってください: {}",
            rejection.body_text()
        ),
    }
}

fn bad_part(error: MultipartError, limit_bytes: usize) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit_bytes }
    } else {
        ApiError::InvalidRequest {
            message: format!("multipart の形式が正しくありません: {}", error.body_text()),
        }
    }
}
