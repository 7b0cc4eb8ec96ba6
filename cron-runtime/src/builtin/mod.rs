//! Targets every build of cronjobs has, whatever targets crate it links: they ship with the
//! runtime, so a team that embeds it (library mode) gets them too.
//!
//! - [`http`]: `http.request`, a job that calls an HTTP endpoint.

pub mod http;

use crate::config::CommonConfig;

/// Applies the process's settings to the built-in targets; every process that validates or
/// runs jobs calls it once at startup, before it serves or schedules anything.
pub fn configure(common: &CommonConfig) {
    http::allow_hosts(common.http_allowed_hosts.clone());
}
