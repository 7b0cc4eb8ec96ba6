//! `http.request`: calls an HTTP endpoint, the job most hosted schedulers start with.
//!
//! The payload is checked when the job is defined (method, URL, header names, `${NAME}`
//! references, statuses, timeout, `CRON_HTTP_ALLOWED_HOSTS`), so a typo is a 400 and not a
//! failed run at 03:00. Header values may name environment variables of the scheduler whose
//! names start with `CRON_SECRET_` (`"Bearer ${CRON_SECRET_API_TOKEN}"`): they are read when
//! the request is sent, so a secret is never stored in the job, the run history or an error
//! message. Only that prefix: whoever may define jobs must not be able to send the scheduler's
//! own settings (`DATABASE_URL`, `SENTRY_DSN`, admin tokens) to a host of their choosing.
//! Redirects, when followed, stay on the request's origin for the same reason.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{redirect, Client, Method, StatusCode, Url};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::AllowedHosts;
use crate::{cron_target, JobContext};

/// How much of a response body the run keeps as its output.
pub const BODY_LIMIT: usize = 4096;
/// A request's timeout when the payload names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `timeout` a payload may ask for (the target's own timeout is a minute longer,
/// so a slow server fails the run as a request timeout, with that message).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Redirects followed when a payload sets `follow_redirects`.
pub const MAX_REDIRECTS: usize = 5;
/// The prefix of the environment variables a header value may name.
pub const SECRET_PREFIX: &str = "CRON_SECRET_";

/// The payload of `http.request`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    /// GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
    pub method: HttpMethod,
    /// An absolute `http://` or `https://` URL.
    #[schemars(with = "String")]
    pub url: HttpUrl,
    /// Request headers. A value may name an environment variable of the scheduler that starts
    /// with `CRON_SECRET_` as `${NAME}` (e.g. `"Bearer ${CRON_SECRET_API_TOKEN}"`), read when
    /// the request is sent.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: Headers,
    /// The request body: a string is sent as it is; any other JSON value is sent as JSON
    /// (with `Content-Type: application/json` unless `headers` names one).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// The statuses that count as success (default: any 2xx).
    #[serde(default)]
    #[schemars(with = "Option<Vec<u16>>")]
    pub expect_status: ExpectStatus,
    /// How long to wait for the whole response, e.g. `"30s"` (default 30s, at most 10m).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: RequestTimeout,
    /// Follow up to 5 redirects on the request's own origin (scheme, host and port); by
    /// default a 3xx answer is the response.
    #[serde(default)]
    pub follow_redirects: bool,
}

/// What a run of `http.request` records as its output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// The response's status code.
    pub status: u16,
    /// From sending the request to the end of the part of the body that was read.
    pub duration_ms: u64,
    /// The body's first 4 KiB, as text (invalid UTF-8 replaced).
    pub body: String,
    /// Whether the body was longer than what is kept.
    pub body_truncated: bool,
}

/// Sends an HTTP request and records the response's status, duration and first 4 KiB of body;
/// a status outside `expect_status` (default: 2xx) fails the run. Payload: `method`, `url`,
/// optional `headers` (values may name `CRON_SECRET_*` environment variables as `${NAME}`, so
/// secrets stay out of the database), `body`, `expect_status`, `timeout` and `follow_redirects`.
#[cron_target("http.request", timeout = "11m")]
pub async fn request(ctx: JobContext, request: HttpRequest) -> anyhow::Result<HttpResponse> {
    let HttpRequest {
        method,
        url,
        headers,
        body,
        expect_status,
        timeout,
        follow_redirects,
    } = request;
    // Checked again here: the list may have changed since the job was defined.
    check_host(&url.0)?;
    let mut header_map = headers.resolve(&|name| std::env::var(name).ok())?;
    header_map.insert("x-cronjobs-run-id", HeaderValue::try_from(ctx.run_id.to_string())?);
    let mut builder = client(follow_redirects)
        .request(method.into(), url.0.clone())
        .timeout(timeout.0);
    builder = match body {
        None => builder,
        Some(serde_json::Value::String(text)) => builder.body(text),
        Some(json) => {
            if !header_map.contains_key(CONTENT_TYPE) {
                header_map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            builder.body(serde_json::to_vec(&json)?)
        }
    };
    let started = Instant::now();
    let exchange = async {
        let mut response = builder.headers(header_map).send().await.map_err(describe_send_error)?;
        let status = response.status();
        let (body, body_truncated) = read_prefix(&mut response).await?;
        Ok::<_, anyhow::Error>((status, body, body_truncated))
    };
    let (status, body, body_truncated) = tokio::select! {
        exchanged = exchange => exchanged?,
        () = ctx.cancelled() => bail!("cancelled while waiting for {} {}", url.0.host_str().unwrap_or("the server"), url.0.path()),
    };
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if !expect_status.accepts(status) {
        let excerpt: String = body.chars().take(300).collect();
        bail!("the server answered {status}, expected {expect_status}; body: {excerpt}");
    }
    Ok(HttpResponse {
        status: status.as_u16(),
        duration_ms,
        body,
        body_truncated,
    })
}

/// Reads at most [`BODY_LIMIT`] bytes of the body (a huge response is not downloaded).
async fn read_prefix(response: &mut reqwest::Response) -> anyhow::Result<(String, bool)> {
    let mut kept = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = response.chunk().await.context("the response body broke off")? {
        let room = BODY_LIMIT - kept.len();
        if chunk.len() > room {
            kept.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        kept.extend_from_slice(&chunk);
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if truncated {
        // A cut may split a character; drop the replacement character it leaves.
        while text.ends_with('\u{FFFD}') {
            text.pop();
        }
    }
    Ok((text, truncated))
}

/// reqwest's message for a timeout or refused connection, without its URL (which the job
/// shows already) and with the cause chain.
fn describe_send_error(error: reqwest::Error) -> anyhow::Error {
    let what = if error.is_timeout() {
        "the request timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_redirect() {
        "too many redirects, or one to a host that is not allowed"
    } else {
        "the request failed"
    };
    anyhow::Error::new(error.without_url()).context(what)
}

static ALLOWED_HOSTS: OnceLock<Option<AllowedHosts>> = OnceLock::new();

/// Sets `CRON_HTTP_ALLOWED_HOSTS` for the rest of the process (the first call wins).
pub fn allow_hosts(hosts: Option<AllowedHosts>) {
    let _ = ALLOWED_HOSTS.set(hosts);
}

fn check_host(url: &Url) -> anyhow::Result<()> {
    let Some(Some(allowed)) = ALLOWED_HOSTS.get() else {
        return Ok(());
    };
    let host = url.host_str().unwrap_or_default();
    match allowed.permits(host) {
        true => Ok(()),
        false => Err(anyhow!(
            "host {host} is not in CRON_HTTP_ALLOWED_HOSTS ({allowed}); add it there or call an allowed host"
        )),
    }
}

/// One client per redirect policy, shared by every run (connections are pooled).
fn client(follow_redirects: bool) -> &'static Client {
    static FOLLOWING: OnceLock<Client> = OnceLock::new();
    static STAYING: OnceLock<Client> = OnceLock::new();
    let (cell, policy) = match follow_redirects {
        true => (
            &FOLLOWING,
            redirect::Policy::custom(|attempt| {
                let first = attempt.previous().first().map(Url::origin);
                if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
                } else if first.is_some_and(|origin| origin != attempt.url().origin()) {
                    // Headers may carry secrets; another origin must not get them.
                    let elsewhere = attempt.url().origin().ascii_serialization();
                    attempt.error(format!("a redirect to another origin ({elsewhere}) is not followed"))
                } else if let Err(e) = check_host(attempt.url()) {
                    attempt.error(e.to_string())
                } else {
                    attempt.follow()
                }
            }),
        ),
        false => (&STAYING, redirect::Policy::none()),
    };
    cell.get_or_init(|| {
        Client::builder()
            .redirect(policy)
            .user_agent(concat!("cronjobs/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only a TLS backend that cannot start fails here; without one no request can work.
            .unwrap_or_else(|e| panic!("cannot build the HTTP client: {e}"))
    })
}

/// The methods `http.request` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl From<HttpMethod> for Method {
    fn from(method: HttpMethod) -> Method {
        match method {
            HttpMethod::Get => Method::GET,
            HttpMethod::Head => Method::HEAD,
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Patch => Method::PATCH,
            HttpMethod::Delete => Method::DELETE,
            HttpMethod::Options => Method::OPTIONS,
        }
    }
}

/// An absolute `http`/`https` URL with a host, allowed by `CRON_HTTP_ALLOWED_HOSTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub Url);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        let url = Url::parse(&raw).map_err(|e| {
            serde::de::Error::custom(format!(
                "{raw:?} is not a URL ({e}); write e.g. https://api.example.com/hook"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(serde::de::Error::custom(format!(
                "{raw:?} is not an http:// or https:// URL with a host"
            )));
        }
        check_host(&url).map_err(serde::de::Error::custom)?;
        Ok(HttpUrl(url))
    }
}

/// Request headers whose values may name environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(HeaderName, Template)>);

impl Headers {
    /// The headers with every `${NAME}` replaced by `lookup(NAME)`; an unset variable is an
    /// error naming the header and the variable, never a value.
    fn resolve(&self, lookup: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<HeaderMap> {
        let mut map = HeaderMap::new();
        for (name, template) in &self.0 {
            let text = template.fill(lookup).map_err(|variable| {
                anyhow!("header {name} names ${{{variable}}}, which is not set in the scheduler's environment")
            })?;
            let mut value = HeaderValue::from_str(&text).map_err(|_| {
                anyhow!("header {name}: an environment variable it names holds characters a header cannot carry")
            })?;
            value.set_sensitive(template.names_a_variable());
            map.append(name.clone(), value);
        }
        Ok(map)
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(deserializer)?;
        let mut headers = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| serde::de::Error::custom(format!("{name:?} is not a valid header name")))?;
            let template =
                Template::parse(&value).map_err(|why| serde::de::Error::custom(format!("header {name}: {why}")))?;
            headers.push((header, template));
        }
        Ok(Headers(headers))
    }
}

/// A header value: literal text and `${NAME}` references.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Variable(String),
}

impl Template {
    fn parse(raw: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = raw;
        while let Some(start) = rest.find("${") {
            pieces.push(Piece::Text(rest[..start].to_owned()));
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| "a ${ is not closed by } (write ${NAME})".to_owned())?;
            let name = &after[..end];
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "${{{name}}} is not an environment variable name (letters, digits and _, not starting with a digit)"
                ));
            }
            if !name.starts_with(SECRET_PREFIX) {
                return Err(format!(
                    "${{{name}}} is not allowed: a header may name only variables starting with {SECRET_PREFIX} \
                     (set e.g. {SECRET_PREFIX}{name} on the scheduler)"
                ));
            }
            pieces.push(Piece::Variable(name.to_owned()));
            rest = &after[end + 1..];
        }
        pieces.push(Piece::Text(rest.to_owned()));
        pieces.retain(|piece| !matches!(piece, Piece::Text(text) if text.is_empty()));
        let literal: String = pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Text(text) => Some(text.as_str()),
                Piece::Variable(_) => None,
            })
            .collect();
        if HeaderValue::from_str(&literal).is_err() {
            return Err("the value holds characters a header cannot carry (control characters or non-ASCII)".into());
        }
        Ok(Template(pieces))
    }

    fn names_a_variable(&self) -> bool {
        self.0.iter().any(|piece| matches!(piece, Piece::Variable(_)))
    }

    /// The text with its variables filled in, or the name of the first one that is unset.
    fn fill(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut text = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(literal) => text.push_str(literal),
                Piece::Variable(name) => text.push_str(&lookup(name).ok_or_else(|| name.clone())?),
            }
        }
        Ok(text)
    }
}

/// The statuses a run accepts as success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectStatus(Option<Vec<StatusCode>>);

impl ExpectStatus {
    fn accepts(&self, status: StatusCode) -> bool {
        match &self.0 {
            None => status.is_success(),
            Some(listed) => listed.contains(&status),
        }
    }
}

impl fmt::Display for ExpectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("2xx"),
            Some(listed) => {
                let codes: Vec<String> = listed.iter().map(|s| s.as_u16().to_string()).collect();
                f.write_str(&codes.join(" or "))
            }
        }
    }
}

impl<'de> Deserialize<'de> for ExpectStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Some(codes) = Option::<Vec<u16>>::deserialize(deserializer)? else {
            return Ok(ExpectStatus(None));
        };
        if codes.is_empty() {
            return Err(serde::de::Error::custom(
                "lists no status; leave it out to accept any 2xx",
            ));
        }
        let statuses = codes
            .into_iter()
            .map(|code| match code {
                100..=599 => StatusCode::from_u16(code).map_err(|e| e.to_string()),
                _ => Err(format!("{code} is not an HTTP status (100 to 599)")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(serde::de::Error::custom)?;
        Ok(ExpectStatus(Some(statuses)))
    }
}

/// A request timeout between 1 ms and [`MAX_TIMEOUT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTimeout(pub Duration);

impl Default for RequestTimeout {
    fn default() -> Self {
        RequestTimeout(DEFAULT_TIMEOUT)
    }
}

impl<'de> Deserialize<'de> for RequestTimeout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        let timeout = humantime::parse_duration(&raw)
            .map_err(|e| serde::de::Error::custom(format!("{raw:?} is not a duration ({e}); write e.g. \"30s\"")))?;
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(serde::de::Error::custom(format!(
                "must be longer than zero and at most {}",
                humantime::format_duration(MAX_TIMEOUT)
            )));
        }
        Ok(RequestTimeout(timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(payload: serde_json::Value) -> Result<HttpRequest, String> {
        crate::__private::decode_payload::<HttpRequest>(payload).map_err(|e| e.to_string())
    }

    #[test]
    fn a_minimal_payload_is_a_get_with_the_defaults() {
        let request = parse(json!({"method": "GET", "url": "https://api.example.com/hook"})).unwrap();
        assert_eq!(request.method, HttpMethod::Get);
        assert_eq!(request.timeout, RequestTimeout(DEFAULT_TIMEOUT));
        assert!(request.expect_status.accepts(StatusCode::NO_CONTENT));
        assert!(!request.expect_status.accepts(StatusCode::FOUND));
        assert!(!request.follow_redirects);
    }

    #[test]
    fn bad_payloads_name_the_field_and_the_fix() {
        let cases = [
            (json!({"method": "FETCH", "url": "https://a.example"}), "method"),
            (json!({"method": "GET", "url": "not a url"}), "url"),
            (
                json!({"method": "GET", "url": "ftp://a.example/x"}),
                "http:// or https://",
            ),
            (
                json!({"method": "GET", "url": "https://a.example", "headers": {"bad name": "x"}}),
                "header name",
            ),
            (
                json!({"method": "GET", "url": "https://a.example", "headers": {"Authorization": "Bearer ${TOKEN"}}),
                "not closed",
            ),
            (
                json!({"method": "GET", "url": "https://a.example", "headers": {"X": "${1X}"}}),
                "environment variable name",
            ),
            (
                json!({"method": "GET", "url": "https://a.example", "headers": {"X": "${DATABASE_URL}"}}),
                "only variables starting with CRON_SECRET_",
            ),
            (
                json!({"method": "GET", "url": "https://a.example", "expect_status": [700]}),
                "700",
            ),
            (
                json!({"method": "GET", "url": "https://a.example", "expect_status": []}),
                "lists no status",
            ),
            (
                json!({"method": "GET", "url": "https://a.example", "timeout": "1h"}),
                "at most 10m",
            ),
            (
                json!({"method": "GET", "url": "https://a.example", "timeout": "soon"}),
                "not a duration",
            ),
            (
                json!({"method": "GET", "url": "https://a.example", "retries": 3}),
                "retries",
            ),
        ];
        for (payload, expected) in cases {
            let error = parse(payload.clone()).expect_err(&payload.to_string());
            assert!(error.contains(expected), "{payload}: {error}");
        }
    }

    #[test]
    fn header_values_fill_in_environment_variables_and_name_the_unset_one() {
        let request = parse(json!({
            "method": "POST", "url": "https://a.example",
            "headers": {"Authorization": "Bearer ${CRON_SECRET_API_TOKEN}", "X-Plain": "plain"}
        }))
        .unwrap();
        let lookup = |name: &str| (name == "CRON_SECRET_API_TOKEN").then(|| "s3cret".to_owned());
        let map = request.headers.resolve(&lookup).unwrap();
        assert_eq!(map["authorization"], "Bearer s3cret");
        assert!(map["authorization"].is_sensitive());
        assert_eq!(map["x-plain"], "plain");
        let error = request.headers.resolve(&|_| None).unwrap_err().to_string();
        assert_eq!(
            error,
            "header authorization names ${CRON_SECRET_API_TOKEN}, which is not set in the scheduler's environment"
        );
    }

    #[test]
    fn allowed_hosts_match_names_and_subdomains_only() {
        let allowed = AllowedHosts::parse("api.example.com, *.internal.example").unwrap();
        assert!(allowed.permits("api.example.com"));
        assert!(allowed.permits("API.example.com."));
        assert!(allowed.permits("billing.internal.example"));
        assert!(!allowed.permits("internal.example"));
        assert!(!allowed.permits("evilinternal.example"));
        assert!(!allowed.permits("api.example.com.evil"));
        assert!(AllowedHosts::parse(" , ").is_err());
        assert!(AllowedHosts::parse("https://api.example.com").is_err());
    }
}

#[cfg(test)]
mod against_a_local_server {
    use std::time::Duration;

    use axum::response::Redirect;
    use axum::routing::get;
    use serde_json::json;

    use crate::domain::RunReason;
    use crate::testing::{Invocation, RunOutcome};

    /// A server with a page, a redirect to it, and a redirect to another origin.
    async fn server() -> String {
        let app = axum::Router::new()
            .route("/page", get(|| async { "the page" }))
            .route("/here", get(|| async { Redirect::temporary("/page") }))
            .route(
                "/away",
                get(|| async { Redirect::temporary("http://localhost:9/page") }),
            )
            .route(
                "/hang",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    async fn run(payload: serde_json::Value, cancel_after: Option<Duration>) -> RunOutcome {
        // The target never touches the database: a pool that never connects will do.
        let db = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
        let invocation = Invocation::of("http.request").payload(payload);
        let invocation = match cancel_after {
            Some(delay) => invocation.cancel_after(delay),
            None => invocation,
        };
        invocation.run(&db).await.unwrap()
    }

    #[tokio::test]
    async fn redirects_are_followed_on_the_same_origin_only() {
        let base = server().await;
        let here = run(
            json!({"method": "GET", "url": format!("{base}/here"), "follow_redirects": true}),
            None,
        )
        .await;
        assert!(
            matches!(&here, RunOutcome::Succeeded { output } if output["body"] == "the page"),
            "{here:?}"
        );
        let away = run(
            json!({"method": "GET", "url": format!("{base}/away"), "follow_redirects": true}),
            None,
        )
        .await;
        let RunOutcome::Failed { error, .. } = &away else {
            panic!("{away:?}")
        };
        assert!(error.contains("another origin (http://localhost:9)"), "{error}");
    }

    #[tokio::test]
    async fn a_cancel_stops_the_wait_for_a_hanging_server() {
        let base = server().await;
        let started = std::time::Instant::now();
        let hung = run(
            json!({"method": "GET", "url": format!("{base}/hang")}),
            Some(Duration::from_millis(300)),
        )
        .await;
        assert!(
            matches!(
                &hung,
                RunOutcome::Failed {
                    reason: RunReason::Cancelled,
                    ..
                }
            ),
            "{hung:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the handler returned at the cancel"
        );
    }

    #[tokio::test]
    async fn a_slow_server_fails_the_run_with_the_request_timeout() {
        let base = server().await;
        let slow = run(
            json!({"method": "GET", "url": format!("{base}/hang"), "timeout": "300ms"}),
            None,
        )
        .await;
        let RunOutcome::Failed { reason, error } = &slow else {
            panic!("{slow:?}")
        };
        assert_eq!(*reason, RunReason::Error);
        assert!(error.contains("timed out"), "{error}");
    }
}
