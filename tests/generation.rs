//! Generated answers: the LLM protocol against a scripted OpenAI-compatible endpoint
//! (`protocol`), the HTTP API with a small corpus that contains a prompt injection (`api`), and
//! the real small model (`real_model`, ignored by default; see the README).

mod generation {
    pub mod api;
    pub mod calibration;
    pub mod protocol;
    pub mod real_model;
    pub mod scripted;
}
