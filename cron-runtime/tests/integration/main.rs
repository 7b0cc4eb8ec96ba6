//! Integration tests of the library: the schedule engine against known cases, properties and
//! croniter, and the schema and store against a real PostgreSQL (one database per test).
//!
//! One test binary with a module per area (see `tests/tests/black_box/main.rs` for why).

mod migrations;
mod schedule_crosscheck;
mod schedule_known_cases;
mod schedule_properties;
mod schema_constraints;
mod slot_accounting;
mod store_definitions;
mod store_incidents;
mod store_lifecycle;
mod store_runs;
mod support;
