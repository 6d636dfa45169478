//! `POST /v1/ask` with `"stream": true`: the answer as server-sent events.
//!
//! Events, in order: one `passages` ([`StreamPassages`]: what the model was given, numbered as
//! its raw `[n]` markers mean), any number of `delta` ([`StreamDelta`]: raw model text, **not
//! verified**), then exactly one `answer` (an [`AskResponse`], verified, with its own citation
//! numbering). A client that disconnects drops the event stream, which cancels the generation.

use std::convert::Infallible;
use std::time::Instant;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use super::wire::{AskResponse, StreamDelta, StreamPassages};
use crate::generate::AskEvent;
use crate::service::Searched;

/// The SSE response of `events`; `started` is when the request began (for `took_ms`).
pub fn sse(
    events: impl Stream<Item = AskEvent> + Send + 'static,
    started: Instant,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + Send + 'static> {
    let events = events.map(move |event| {
        Ok(match event {
            AskEvent::Passages(passages) => json_event("passages", &StreamPassages::from(passages)),
            AskEvent::Delta(text) => json_event("delta", &StreamDelta { text }),
            AskEvent::Answer(answer) => json_event(
                "answer",
                &AskResponse::from(Searched {
                    result: answer,
                    took_ms: started.elapsed().as_millis() as u64,
                }),
            ),
        })
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// A named event with a JSON payload. Serialising these types cannot fail in practice; if it
/// did, the client gets an `error` event rather than a broken stream.
fn json_event(name: &'static str, payload: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(payload)
        .unwrap_or_else(|error| {
            tracing::error!(%error, event = name, "cannot serialise a stream event");
            Event::default()
                .event("error")
                .data("サーバー内部でエラーが発生しました。")
        })
}
