//! `/schedule/preview`: the next fire times of an expression, to check it before saving.

use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::QueryParams;
use crate::domain::Schedule;
use crate::web::error::{documented, ApiError, Problem};

/// Bounds of `count`.
pub const COUNT: std::ops::RangeInclusive<usize> = 1..=100;

/// The next fire times, in UTC.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    pub items: Vec<DateTime<Utc>>,
}

/// Query parameters of the preview.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters parsed by `preview_schedule`
pub struct PreviewParams {
    /// The cron expression (5 or 6 fields, or a macro).
    #[param(required = true, example = "*/15 * * * *")]
    cron_expression: String,
    /// IANA timezone, default `UTC`.
    timezone: Option<String>,
    /// How many fire times, 1 to 100 (default 5).
    #[param(minimum = 1, maximum = 100)]
    count: Option<u32>,
}

/// The next `count` fire times of `cron_expression` in `timezone`, after now.
#[utoipa::path(get, path = "/api/v2/admin/cron/schedule/preview", tag = "schedule", params(PreviewParams),
    responses(
        (status = 200, description = "The next fire times.", body = Preview),
        (status = 400, description = "The expression, timezone or count is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = inline(documented::NoAdminToken)),
    ))]
pub async fn preview_schedule(mut query: QueryParams) -> Result<Json<Preview>, ApiError> {
    let expression = query.take("cron_expression", |v| Ok(v.to_owned()));
    let timezone = query.take("timezone", |v| Ok(v.to_owned()));
    let count = query
        .take("count", |v| match v.parse::<usize>() {
            Ok(n) if COUNT.contains(&n) => Ok(n),
            _ => Err(format!(
                "must be a whole number from {} to {}",
                COUNT.start(),
                COUNT.end()
            )),
        })
        .unwrap_or(5);
    let schedule = match expression {
        None => {
            query.error("cron_expression", "is required");
            None
        }
        Some(expression) => match Schedule::parse(&expression, timezone.as_deref().unwrap_or("UTC")) {
            Ok(schedule) => Some(schedule),
            Err(e) => {
                query.error(e.field(), e.to_string());
                None
            }
        },
    };
    query.finish()?;
    let items = schedule.map(|s| s.upcoming(Utc::now(), count)).unwrap_or_default();
    Ok(Json(Preview { items }))
}
