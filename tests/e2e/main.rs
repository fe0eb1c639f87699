//! End-to-end tests: the `hljca` binary against SoftHSM2 tokens made per test in a temporary
//! directory, checked with tools this project did not write (openssl, pkcs11-tool, sqlite3).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "../pg_cluster.rs"]
mod pg_cluster;
mod support;

mod api;
mod apps;
mod bad_input;
mod batch;
mod bulk;
mod counter_rules;

mod engine;
mod faults;
mod foundation;
mod hygiene;
mod lifecycle;
mod multisite;
mod operators;
mod portal;
mod portal_browser;
mod portal_client;
mod portal_refusals;
mod portal_renewal;
mod portal_sso;
mod scale;
mod serve;
mod signing_path;
mod sites;
mod types;
