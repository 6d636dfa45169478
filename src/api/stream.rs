//! `POST /v1/ask` with `"stream": true`: the answer as server-sent events.
//!
//! Events, in order: one `passages` ([`StreamPassages`]: the passages the answer is drawn
//! from), `generating` once the model starts writing (generated answers only), any number of
//! `sentence` ([`StreamSentence`]: one more **verified** sentence, with its citation numbers as
//! the final answer numbers them), then exactly one `answer` (an [`AskResponse`]). Nothing the
//! model wrote reaches the client unverified. A client that disconnects drops the event
//! stream, which cancels the generation. The stream has the request's deadline: past it, an
//! `error` event ends it (and the generation is cancelled).

use std::convert::Infallible;
use std::time::Instant;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use super::wire::{AskResponse, Names, StreamPassages, StreamSentence};
use crate::generate::AskEvent;
use crate::service::Searched;

/// The SSE response of `events`; `started` is when the request began (for `took_ms`), and the
/// stream ends at `deadline`.
pub fn sse(
    events: impl Stream<Item = AskEvent> + Send + 'static,
    started: Instant,
    deadline: tokio::time::Instant,
    names: Names,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + Send + 'static> {
    let events = Box::pin(events);
    let timed = futures_util::stream::unfold(Some(events), move |events| {
        let names = names.clone();
        async move {
            let mut events = events?;
            match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(Some(event)) => Some((Ok(to_event(event, started, &names)), Some(events))),
                Ok(None) => None,
                Err(_) => {
                    tracing::warn!("a streamed answer reached the request timeout");
                    let timeout = Event::default()
                        .event("error")
                        .json_data(serde_json::json!({ "message": super::error::ApiError::Timeout.message() }))
                        .unwrap_or_default();
                    Some((Ok(timeout), None))
                }
            }
        }
    });
    Sse::new(timed).keep_alive(KeepAlive::default())
}

fn to_event(event: AskEvent, started: Instant, names: &Names) -> Event {
    match event {
        AskEvent::Passages(passages) => {
            json_event("passages", &StreamPassages::new(passages, names))
        }
        AskEvent::Generating => Event::default().event("generating").data("{}"),
        AskEvent::Sentence { text, citations } => {
            json_event("sentence", &StreamSentence { text, citations })
        }
        AskEvent::Answer(answer) => json_event(
            "answer",
            &AskResponse::new(
                Searched {
                    result: answer,
                    took_ms: started.elapsed().as_millis() as u64,
                },
                names,
            ),
        ),
    }
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
