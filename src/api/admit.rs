//! Admission of searches and answers: a fixed number of slots, 503 at once when none is free,
//! and a slot held until the response body has been sent (a streamed answer holds its slot for
//! its whole life, not just until its first byte).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::AppState;
use super::error::ApiError;

pub async fn query(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Ok(slot) = state.queries.clone().try_acquire_owned() else {
        return ApiError::Overloaded.into_response();
    };
    let (parts, body) = next.run(request).await.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        // The slot lives as long as the body stream: released when it ends or is dropped.
        let _held = &slot;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}
