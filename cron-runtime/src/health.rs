//! What both processes answer about themselves (`/healthz`): the one thing the API and the
//! scheduler's own HTTP port share, so neither imports the other.

use serde::Serialize;
use utoipa::ToSchema;

/// The process is up, and which build it runs (so a deploy can tell the new build from the old).
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// `ok`.
    pub status: &'static str,
    /// The package version.
    pub version: &'static str,
    /// The commit, when the image or platform provides it (`CRONJOBS_COMMIT`,
    /// `RAILWAY_GIT_COMMIT_SHA`); null otherwise.
    pub commit: Option<&'static str>,
}

impl Liveness {
    /// This process's answer.
    pub fn now() -> Self {
        let build = crate::build_info();
        Liveness {
            status: "ok",
            version: build.version,
            commit: build.commit,
        }
    }
}
