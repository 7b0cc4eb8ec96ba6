//! Two functions registered under one key are found by `registry::check()`, which names both.
//!
//! This test binary links only its own registrations, so the duplicate cannot disturb the real
//! targets (the `targets` crate is not linked here).

use cron_runtime::registry::{self, RegistryError};
use cron_runtime::{cron_target, JobContext};

mod first {
    use super::*;

    #[cron_target("dup.key")]
    async fn one(_ctx: JobContext) -> anyhow::Result<()> {
        Ok(())
    }
}

mod second {
    use super::*;

    #[cron_target("dup.key")]
    async fn two(_ctx: JobContext) -> anyhow::Result<()> {
        Ok(())
    }
}

#[test]
fn a_duplicate_key_names_both_functions() {
    let errors = registry::check().expect_err("the key is registered twice");
    let [RegistryError::DuplicateKey { key, first, second }] = errors.as_slice() else {
        panic!("expected one DuplicateKey, got {errors:?}");
    };
    assert_eq!(key, "dup.key");
    // Sorted by file and line: `one` is defined first.
    assert!(
        first.starts_with("one (") && first.contains("duplicate.rs:"),
        "{first}"
    );
    assert!(
        second.starts_with("two (") && second.contains("duplicate.rs:"),
        "{second}"
    );
    assert_ne!(first, second);

    let message = errors[0].to_string();
    assert!(
        message.contains(first.as_str()) && message.contains(second.as_str()),
        "{message}"
    );
}
