//! Test harness for the black-box tests: fresh databases, the API served on a random
//! port, and `cronjobs` processes.

// Link the targets so the in-process registry matches the binary's.
use targets as _;

pub mod api;
pub mod browser;
pub mod chaos;
pub mod db;
pub mod fault_proxy;
pub mod fixtures;
pub mod process;
pub mod sentry_sink;
pub mod torture;
pub mod webhook_receiver;
