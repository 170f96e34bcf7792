//! chatctl's integration tests, one binary (as ripgrep's): a module per
//! area, and one helpers module, `common` (`session_util` for the shared
//! sessions). Run one area with `cargo test --test tests serve::`, one test
//! with its name.

mod common;
mod session_util;

mod capture;
mod capture_fast;
mod capture_netns;
mod cli_surface;
mod client;
mod client_cli;
mod client_server;
mod fetch_lifecycle;
mod generated;
mod impair;
mod impair_cli;
mod impair_relay;
mod integrity;
mod interop;
mod rdt_bbr;
mod rdt_driver;
mod rdt_endpoint;
mod rdt_fast;
mod rdt_fingerprint;
mod rdt_machines;
mod rdt_sim;
mod readme;
mod reconnect;
mod serve;
mod serve_cli;
mod session;
mod wire_errors;
mod wire_fixture;
mod wire_props;
