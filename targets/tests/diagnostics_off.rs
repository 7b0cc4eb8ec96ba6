//! Without `CRON_DIAGNOSTIC_TARGETS`, the diagnostic targets are not in the registry: not
//! listed, not found (so the API rejects them and the scheduler neither runs nor advertises
//! them). `system.heartbeat`, the Definition-of-Done job, is always there.
//!
//! A test binary of its own: enabling is for the whole process.

// Links the `targets` crate: nothing here calls into it by name, and without this line its
// `#[cron_target]` registrations would not be linked into this test binary.
use targets as _;

use cron_runtime::registry::{self, PayloadError};
use serde_json::json;

const DIAGNOSTIC: [&str; 4] = ["system.fail", "system.panic", "system.record", "system.sleep"];

fn listed() -> Vec<&'static str> {
    registry::all().into_iter().map(|t| t.key).collect()
}

#[test]
fn diagnostic_targets_are_off_until_enabled() {
    assert!(!registry::diagnostic_targets_enabled());
    assert!(listed().contains(&"system.heartbeat"));
    assert!(registry::get("system.heartbeat").is_some());
    for key in DIAGNOSTIC {
        assert!(!listed().contains(&key), "{key} is listed while off");
        assert!(registry::get(key).is_none(), "{key} is found while off");
        assert_eq!(
            registry::validate_payload(key, &json!({})),
            Err(PayloadError::UnknownTarget(key.to_owned()))
        );
    }
    // Checked whether enabled or not: a duplicate among them still breaks every build.
    assert_eq!(registry::check(), Ok(()));

    registry::enable_diagnostic_targets();
    for key in DIAGNOSTIC {
        assert!(listed().contains(&key), "{key} is not listed once enabled");
        assert!(registry::get(key).is_some(), "{key} is not found once enabled");
    }
}
