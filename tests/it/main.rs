//! The integration tests: one test binary, one module per area.
//!
//! Every test binary links the whole server with llama.cpp (hundreds of MB each), so the areas
//! share one binary instead of one each: one link after a change, not sixteen. The tests of all
//! areas run in parallel in this one process; what is global to a process (the metrics
//! recorder, Leptos' reactive runtime, the embedded model's backend) is written to be shared,
//! and a test that must see that state alone runs in a child process (`common::isolated`).
//!
//! One area: `cargo test --features ssr --test it durability::`.
#![cfg(feature = "ssr")]

mod common;

mod asr;
mod avatars_api;
mod cards;
mod disk_full;
mod durability;
mod embedded;
mod history_api;
mod http;
mod limits;
mod llm;
mod pages;
mod security;
mod shared_db;
mod startup;
mod storage;
mod store;
mod telemetry;
mod tts;
mod voice;
mod wire;
