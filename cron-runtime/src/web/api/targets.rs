//! `/targets`: what the compiled registry offers.

use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::registry;
use crate::web::error::documented;

/// A registered target.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetInfo {
    /// The key jobs name in `target`.
    pub key: String,
    /// The function's doc comment.
    pub description: String,
    /// Runs longer than this are cancelled and failed.
    pub timeout_secs: u64,
    /// The payload the target takes; null when it takes none (send `{}`).
    pub payload: Option<PayloadInfo>,
}

/// A target's payload type.
#[derive(Debug, Serialize, ToSchema)]
pub struct PayloadInfo {
    /// The Rust type's name.
    pub type_name: String,
    /// A JSON Schema of the type, when it provides one.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
}

/// Every registered target.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetList {
    pub items: Vec<TargetInfo>,
}

/// Lists the targets compiled into this build, sorted by key.
#[utoipa::path(get, path = "/api/v2/admin/cron/targets", tag = "targets",
    responses(
        (status = 200, description = "The registered targets.", body = TargetList),
        (status = 401, response = inline(documented::NoAdminToken)),
    ))]
pub async fn list_targets() -> Json<TargetList> {
    let items = registry::all()
        .into_iter()
        .map(|t| TargetInfo {
            key: t.key.to_owned(),
            description: t.description.to_owned(),
            timeout_secs: t.timeout.as_secs(),
            payload: t.payload.as_ref().map(|p| PayloadInfo {
                type_name: p.type_name.to_owned(),
                schema: (p.schema)(),
            }),
        })
        .collect();
    Json(TargetList { items })
}
