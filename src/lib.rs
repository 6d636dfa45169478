//! hikitsugi: answers questions over an organisation's know-how documents, with cited passages,
//! showing each caller only what their organisation may read.
//!
//! Data flow: `hikitsugi_ingest` turns files into chunks; [`index`] embeds ([`embed`]) and
//! stores ([`store`]) them; [`retrieve`] finds passages inside a caller's [`access`] scope
//! (callers known by API key or, through [`identity`], by a trusted issuer's token);
//! [`answer`] builds cited answers, [`generate`] has a language model write them and verifies
//! their citations; [`compare`] answers one question per group, [`similar`] finds passages
//! like a draft, [`facets`] counts what a scope holds, [`export`] writes answers as Markdown
//! and DOCX; [`service`] runs these for the [`api`] and the CLI, and [`audit`] records who
//! asked what in the [`metadata`] database.

pub mod access;
pub mod answer;
pub mod api;
pub mod audit;
pub mod cli;
pub mod compare;
pub mod config;
pub mod convert;
pub mod embed;
pub mod eval;
pub mod export;
pub mod facets;
pub mod generate;
pub mod identity;
pub mod index;
pub mod metadata;
pub mod migrate;
pub mod ocr;
pub mod retrieve;
pub mod role;
pub mod secret;
pub mod service;
pub mod setup;
pub mod similar;
pub mod store;
pub mod tool;
