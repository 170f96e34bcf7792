//! chatctl's integration tests, one binary (as ripgrep's): a module per
//! behaviour, named for what the user or the protocol does (`room`,
//! `downloads_resume_and_retry`, `fast_on_simulated_paths`,
//! `congestion_control`, `capture_decoding`...), and one helpers module,
//! `common` (`common::session` for the shared sessions). Run one module with
//! `cargo test --test tests room::`, one test with its name.

mod common;

mod capture_decoding;
mod capture_fast_transfers;
mod capture_real_traffic;
mod client_against_the_server;
mod client_commands;
mod client_reference_quirks;
mod codec_errors;
mod codec_properties;
mod codec_reference_capture;
mod command_line;
mod congestion_control;
mod downloads_of_changing_files;
mod downloads_resume_and_retry;
mod fast_downloads;
mod fast_on_simulated_paths;
mod fast_over_sockets;
mod fast_protocol_rules;
mod generated;
mod impairment_model;
mod interop;
mod one_driver_for_every_machine;
mod readme;
mod reconnect;
mod relay_command;
mod relay_sockets;
mod room;
mod server_logs_and_signals;
mod shared_sessions;
mod simulator_fingerprints;
