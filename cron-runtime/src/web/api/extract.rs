//! Extractors that answer bad input with a 400 problem naming the field, instead of axum's
//! plain-text rejections: JSON bodies, query strings and id path parameters.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::domain::JobKey;
use crate::web::error::{ApiError, FieldError};

/// A JSON body: wrong content type, malformed JSON, unknown fields and wrong types are 400s
/// naming the field; a body over the limit is a 413.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(not_json());
        }
        decode_json(&read_body(req, state).await?).map(ApiJson)
    }
}

/// An optional JSON body: an empty body is `None`; any other follows [`ApiJson`]'s rules.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !json {
            return Err(not_json());
        }
        decode_json(&bytes).map(|body| OptionalJson(Some(body)))
    }
}

fn not_json() -> ApiError {
    ApiError::invalid("body", "send a JSON body with `Content-Type: application/json`")
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::invalid("body", format!("the body could not be read: {e}"))
        }
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Deserializes `bytes`, naming where a value does not fit (`payload`, `schedule_type`, ...).
fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::invalid("body", format!("malformed JSON: {e}")))?;
    if let Some(field) = find_nul(&value, "") {
        // PostgreSQL cannot store U+0000 in text or jsonb: reject it here rather than fail there.
        return Err(ApiError::invalid(field, "must not contain the NUL character (\\u0000)"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = strip_position(&e.into_inner().to_string());
        // The path names the field, unknown ones included; "." is the body itself.
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::invalid(field, message)
    })
}

/// The path of the first string or key containing U+0000, if any.
fn find_nul(value: &serde_json::Value, path: &str) -> Option<String> {
    let here = || {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(here()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_nul(v, &format!("{}[{i}]", here()))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(child)
            } else {
                find_nul(v, &child)
            }
        }),
        _ => None,
    }
}

/// serde_json appends " at line L column C", which says nothing to an HTTP client.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The query string as name/value pairs. Handlers read the parameters they know with
/// [`QueryParams::take`] and finish with [`QueryParams::finish`], which reports every bad value
/// and every unknown parameter together.
#[derive(Debug)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
    known: Vec<&'static str>,
    errors: Vec<FieldError>,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or_default();
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((decode_component(name)?, decode_component(value)?))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(QueryParams {
            pairs,
            known: Vec::new(),
            errors: Vec::new(),
        })
    }
}

fn decode_component(raw: &str) -> Result<String, ApiError> {
    let spaced = raw.replace('+', " ");
    // NUL is refused too: PostgreSQL cannot compare text with it.
    percent_decode(&spaced)
        .filter(|decoded| !decoded.contains('\0'))
        .ok_or_else(|| {
            ApiError::invalid(
                "query",
                "the query string is not valid percent-encoded UTF-8 without NUL",
            )
        })
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl QueryParams {
    /// Parses the parameter `name` if present; a bad value (or a repeated parameter) is
    /// recorded and reported by [`finish`](Self::finish).
    pub fn take<T>(&mut self, name: &'static str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        self.known.push(name);
        let mut values = self.pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let value = values.next()?;
        if values.next().is_some() {
            self.errors.push(FieldError::new(name, "must be given at most once"));
            return None;
        }
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.errors.push(FieldError::new(name, message));
                None
            }
        }
    }

    /// Records an error found while combining parameters.
    pub fn error(&mut self, name: &'static str, message: impl Into<String>) {
        self.errors.push(FieldError::new(name, message));
    }

    /// Fails with every bad value and unknown parameter seen.
    pub fn finish(mut self) -> Result<(), ApiError> {
        let expected = self.known.join(", ");
        for (name, _) in &self.pairs {
            if !self.known.contains(&name.as_str()) && !self.errors.iter().any(|e| &e.field == name) {
                self.errors.push(FieldError::new(
                    name.clone(),
                    format!("unknown query parameter; expected one of: {expected}"),
                ));
            }
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// The `{jobId}` path parameter.
#[derive(Debug, Clone, Copy)]
pub struct JobId(pub Uuid);

/// The `{jobKey}` path parameter.
#[derive(Debug, Clone)]
pub struct JobKeyParam(pub JobKey);

impl<S: Send + Sync> FromRequestParts<S> for JobKeyParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid("jobKey", e.body_text()))?;
        JobKey::parse(&raw)
            .map(JobKeyParam)
            .map_err(|e| ApiError::invalid("jobKey", e.to_string()))
    }
}

/// The `{runId}` path parameter.
#[derive(Debug, Clone, Copy)]
pub struct RunId(pub Uuid);

/// The `{incidentId}` path parameter.
#[derive(Debug, Clone, Copy)]
pub struct IncidentId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IncidentId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        path_uuid(parts, state, "incidentId").await.map(IncidentId)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for JobId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        path_uuid(parts, state, "jobId").await.map(JobId)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RunId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        path_uuid(parts, state, "runId").await.map(RunId)
    }
}

async fn path_uuid<S: Send + Sync>(parts: &mut Parts, state: &S, name: &'static str) -> Result<Uuid, ApiError> {
    let Path(raw) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::invalid(name, e.body_text()))?;
    parse_uuid(&raw).map_err(|message| ApiError::invalid(name, message))
}

/// Parses a UUID, saying what was expected.
pub fn parse_uuid(raw: &str) -> Result<Uuid, String> {
    Uuid::parse_str(raw)
        .map_err(|_| format!("{raw:?} is not a UUID (expected e.g. 0190b5a2-7c1e-7d3a-9f0e-2b4c6d8e0f1a)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: Option<String>,
        count: Option<u32>,
    }

    fn fields(result: Result<Body, ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(fields(decode_json(br#"{"nmae": "x"}"#)), ["nmae"]);
        assert_eq!(fields(decode_json(br#"{"count": "x"}"#)), ["count"]);
        assert_eq!(fields(decode_json(br#"{"name": "#)), ["body"]);
        assert_eq!(fields(decode_json(br#"[]"#)), ["body"]);
        assert_eq!(fields(decode_json(br#"{} {}"#)), ["body"]);
        assert_eq!(fields(decode_json(br#"{"name": "a\u0000b"}"#)), ["name"]);
        assert!(decode_json::<Body>(br#"{"name": "x", "count": 3}"#).is_ok());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("%2"), None);
    }
}
