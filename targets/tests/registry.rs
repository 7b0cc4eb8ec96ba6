//! The `targets` crate registers the diagnostic targets, with valid keys and the right payloads.

// Links the `targets` crate: nothing here calls into it by name, and without this line its
// `#[cron_target]` registrations would not be linked into this test binary.
use targets as _;

use std::time::Duration;

use cron_runtime::registry::{self, PayloadError};
use serde_json::json;

#[test]
fn the_registry_is_valid() {
    assert_eq!(registry::check(), Ok(()));
}

#[test]
fn the_system_targets_are_registered() {
    // As `CRON_DIAGNOSTIC_TARGETS=1` does in the binary (diagnostics_off.rs covers the default).
    registry::enable_diagnostic_targets();
    let expected = [
        ("system.fail", Some("FailArgs")),
        ("system.heartbeat", None),
        ("system.panic", None),
        ("system.prune", Some("PruneArgs")),
        ("system.record", Some("RecordArgs")),
        ("system.sleep", Some("SleepArgs")),
    ];
    for (key, payload) in expected {
        let target = registry::get(key).unwrap_or_else(|| panic!("{key} is not registered"));
        assert_eq!(target.payload.as_ref().map(|p| p.type_name), payload, "{key}");
        assert!(!target.description.is_empty(), "{key} has no description");
        if let Some(spec) = &target.payload {
            assert!((spec.schema)().is_some(), "{key}'s payload has no JSON Schema");
        }
    }
    let system: Vec<_> = registry::all()
        .into_iter()
        .map(|t| t.key)
        .filter(|k| k.starts_with("system."))
        .collect();
    let keys: Vec<_> = expected.iter().map(|(k, _)| *k).collect();
    assert_eq!(system, keys, "sorted by key, and no others");

    let sleep = registry::get("system.sleep").expect("registered");
    assert!(
        sleep.timeout > Duration::from_secs(86_400),
        "longer than the longest sleep"
    );
}

#[test]
fn sleep_payloads_are_checked() {
    registry::enable_diagnostic_targets();
    assert_eq!(
        registry::validate_payload("system.sleep", &json!({"seconds": 0.5})),
        Ok(())
    );
    assert_eq!(
        registry::validate_payload("system.sleep", &json!({"seconds": 86400})),
        Ok(())
    );
    for bad in [
        json!({"seconds": "x"}),
        json!({"seconds": -1}),
        json!({"seconds": 86400.5}),
    ] {
        match registry::validate_payload("system.sleep", &bad) {
            Err(PayloadError::Invalid { path, .. }) => assert_eq!(path, "seconds", "{bad}"),
            other => panic!("{bad}: expected Invalid at seconds, got {other:?}"),
        }
    }
    assert!(matches!(
        registry::validate_payload("system.sleep", &json!({})),
        Err(PayloadError::Invalid { message, .. }) if message.contains("missing field `seconds`")
    ));
    assert!(matches!(
        registry::validate_payload("system.sleep", &json!({"seconds": 1, "second": 2})),
        Err(PayloadError::Invalid { message, .. }) if message.contains("unknown field `second`")
    ));
}

#[test]
fn fail_payloads_are_checked() {
    registry::enable_diagnostic_targets();
    assert_eq!(
        registry::validate_payload("system.fail", &json!({"message": "boom"})),
        Ok(())
    );
    assert!(matches!(
        registry::validate_payload("system.fail", &json!({"message": 1})),
        Err(PayloadError::Invalid { path, .. }) if path == "message"
    ));
}

#[test]
fn targets_without_a_payload_refuse_one() {
    assert_eq!(
        registry::validate_payload("system.heartbeat", &json!({"x": 1})),
        Err(PayloadError::Unexpected("system.heartbeat".into()))
    );
    assert_eq!(registry::validate_payload("system.heartbeat", &json!({})), Ok(()));
}
