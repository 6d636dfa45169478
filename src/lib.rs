//! hikitsugi: answers questions over an organisation's know-how documents, with cited passages,
//! showing each caller only what their organisation may read.
//!
//! Data flow: `hikitsugi_ingest` turns files into chunks; [`index`] embeds ([`embed`]) and
//! stores ([`store`]) them; [`retrieve`] finds passages inside a caller's [`access`] scope;
//! [`answer`] builds cited answers, [`generate`] has a language model write them and verifies
//! their citations; [`service`] runs these for the [`api`] and the CLI.

pub mod access;
pub mod answer;
pub mod api;
pub mod cli;
pub mod config;
pub mod embed;
pub mod eval;
pub mod generate;
pub mod index;
pub mod metadata;
pub mod migrate;
pub mod retrieve;
pub mod role;
pub mod secret;
pub mod service;
pub mod setup;
pub mod store;
