//! Every admin route requires an admin's bearer token; the OpenAPI document and the health
//! checks do not.

use cron_runtime::web::api::{self, Verb};
use reqwest::Method;
use tests::api::{send, Reply, TestApi};

fn method(verb: Verb) -> Method {
    Method::from_bytes(verb.as_str().as_bytes()).unwrap()
}

/// The route's path with sample ids in place of its parameters.
fn concrete(path: &str) -> String {
    path.replace("{jobId}", &uuid::Uuid::now_v7().to_string())
        .replace("{runId}", &uuid::Uuid::now_v7().to_string())
}

#[track_caller]
fn assert_unauthorized(reply: &Reply, what: &str) {
    reply.problem(401);
    assert_eq!(
        reply.headers.get("www-authenticate").and_then(|v| v.to_str().ok()),
        Some("Bearer"),
        "{what}"
    );
}

#[tokio::test]
async fn every_admin_route_rejects_a_missing_or_wrong_token() {
    let api = TestApi::spawn().await;
    let admin_routes: Vec<_> = api::routes().into_iter().filter(|r| r.admin).collect();
    assert_eq!(
        admin_routes.len(),
        19,
        "the §7 table has 11 admin endpoints, §13 adds 5 (retire, by-key, cancel, schedulers, incidents), \
         §21 adds 2 (acknowledge, resolve an incident), plus GET /metrics"
    );
    for route in admin_routes {
        let url = format!("{}{}", api.base, concrete(route.path));
        let what = format!("{} {}", route.verb.as_str(), route.path);
        let anonymous = send(
            api.client
                .request(method(route.verb), &url)
                .json(&serde_json::json!({})),
        )
        .await;
        assert_unauthorized(&anonymous, &what);
        for header in [
            "Bearer wrong-token-0123456789abcdef",
            "Bearer alice-token-0123456789abcde",
            "Bearer alice-token-0123456789abcdef0",
            "Basic YWxpY2U6cGFzc3dvcmQ=",
            "alice-token-0123456789abcdef",
        ] {
            let reply = send(
                api.client
                    .request(method(route.verb), &url)
                    .header("authorization", header)
                    .json(&serde_json::json!({})),
            )
            .await;
            assert_unauthorized(&reply, &format!("{what} with {header}"));
        }
    }
}

#[tokio::test]
async fn the_public_routes_need_no_token() {
    let api = TestApi::spawn().await;
    for route in api::routes().into_iter().filter(|r| !r.admin) {
        let reply = send(
            api.client
                .request(method(route.verb), format!("{}{}", api.base, route.path)),
        )
        .await;
        assert_eq!(reply.status, 200, "{}: {}", route.path, reply.text);
    }
}

#[tokio::test]
async fn the_token_identifies_the_actor() {
    let api = TestApi::spawn().await;
    let job = api.one_time_job("actor").await;
    assert_eq!(job["created_by"], "alice");
    let reply = send(api.request(Method::GET, "/targets")).await;
    assert_eq!(reply.status, 200);
}
