//! Compile tests of `#[cron_target]`: what it accepts, and where it points when it refuses.
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test -p cron-macros --test ui`,
//! then review that each error points at the user's mistake.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
