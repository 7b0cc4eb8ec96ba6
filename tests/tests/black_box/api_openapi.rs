//! The OpenAPI document describes exactly the routes the router serves.

use std::collections::BTreeSet;

use cron_runtime::web::api;
use serde_json::Value;
use tests::api::{send, TestApi};

async fn document(api: &TestApi) -> Value {
    let reply = send(api.client.get(format!("{}/api/v2/admin/cron/openapi.json", api.base))).await;
    assert_eq!(reply.status, 200);
    reply.body
}

#[tokio::test]
async fn every_served_route_is_documented_and_vice_versa() {
    let api = TestApi::spawn().await;
    let doc = document(&api).await;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete", "head", "options"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = api::routes()
        .into_iter()
        .map(|r| (r.verb.as_str().to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(served, documented);

    // And the router really serves each of them (not 404/405).
    for (method, path) in &served {
        let url = format!("{}{}", api.base, path.replace("{jobId}", "x").replace("{runId}", "x"));
        let reply = send(
            api.client
                .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
                .bearer_auth(tests::api::ADMIN_TOKEN),
        )
        .await;
        assert_ne!(reply.body["type"], "urn:cronjobs:problem:not-found", "{method} {path}");
        assert_ne!(reply.status, 405, "{method} {path}");
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_bearer_auth_and_problem_errors() {
    let api = TestApi::spawn().await;
    let doc = document(&api).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(doc["info"]["description"]
        .as_str()
        .unwrap()
        .contains("cronjobs_changes"));
    for route in api::routes() {
        let operation = &doc["paths"][route.path][route.verb.as_str().to_lowercase()];
        let responses = operation["responses"].as_object().unwrap();
        if route.admin {
            assert!(
                operation.get("security").is_none(),
                "{}: uses the global bearer requirement",
                route.path
            );
            let unauthorized = &responses["401"]["content"]["application/problem+json"]["schema"];
            assert!(unauthorized.is_object(), "{} documents 401", route.path);
        } else {
            assert_eq!(
                operation["security"],
                serde_json::json!([{}]),
                "{} is public",
                route.path
            );
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert!(
                    response["content"]["application/problem+json"].is_object(),
                    "{} {status} is a problem",
                    route.path
                );
            }
        }
    }
    for schema in [
        "Job",
        "Run",
        "Problem",
        "FieldError",
        "CreateJob",
        "NewVersion",
        "PauseJob",
        "TargetList",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema} documented");
    }
}

/// Every operation of the document, by operationId: its path parameters' names.
fn operations(doc: &Value) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut operations = std::collections::BTreeMap::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let Some(id) = operation["operationId"].as_str() else {
                continue;
            };
            let parameters = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            operations.insert(id.to_owned(), parameters);
        }
    }
    operations
}

/// Links (what a client or a stateful fuzzer follows from a created job or run) name real
/// operations and exactly their path parameters, taken from the response body's `id`.
#[tokio::test]
async fn links_from_created_jobs_and_runs_lead_to_real_operations() {
    let api = TestApi::spawn().await;
    let doc = document(&api).await;
    let operations = operations(&doc);
    let mut followed = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for response in responses.values() {
                let Some(links) = response["links"].as_object() else {
                    continue;
                };
                for (name, link) in links {
                    let target = link["operationId"]
                        .as_str()
                        .unwrap_or_else(|| panic!("link {name} has no operationId: {link}"));
                    let expected = operations
                        .get(target)
                        .unwrap_or_else(|| panic!("link {name} names no operation: {target}"));
                    let given: BTreeSet<String> = link["parameters"].as_object().unwrap().keys().cloned().collect();
                    assert_eq!(&given, expected, "link {name} to {target}");
                    assert!(link["parameters"]
                        .as_object()
                        .unwrap()
                        .values()
                        .all(|v| v == "$response.body#/id"));
                    followed.insert(target.to_owned());
                }
            }
        }
    }
    let expected: BTreeSet<String> = [
        "get_job",
        "pause_job",
        "resume_job",
        "new_version",
        "run_now",
        "get_run",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(followed, expected);
}
