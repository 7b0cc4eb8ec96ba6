//! The admin console in a real browser: headless Chromium through chromedriver, against the
//! real `cronjobs api` and `cronjobs scheduler` on a seeded database.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::DateTime;
use fantoccini::Locator;
use serde_json::{json, Value};
use tests::browser::Browser;
use tests::db::TestDb;
use tests::fixtures::{api_process, scheduler};
use tests::process::Cronjobs;

const ADMIN_TOKEN: &str = "console-admin-token-0123456789";
const VIEWER_TOKEN: &str = "console-viewer-token-0123456789";
const REST: &str = "/api/v2/admin/cron";

/// An API (admin `ops`, viewer `victor`) and a scheduler over a database seeded with jobs.
struct Console {
    _db: TestDb,
    _api: Cronjobs,
    _scheduler: Cronjobs,
    base: String,
    http: reqwest::Client,
}

impl Console {
    async fn start() -> Console {
        let db = TestDb::create().await;
        let viewers = format!("victor:{VIEWER_TOKEN}");
        let (api, base) = api_process(&db, ADMIN_TOKEN, &[("CRON_VIEWER_TOKENS", viewers.as_str())]).await;
        let scheduler = scheduler(&db, &[]);
        let console = Console {
            _db: db,
            _api: api,
            _scheduler: scheduler,
            base,
            http: reqwest::Client::new(),
        };
        for (key, expression, timezone, description) in [
            (
                "berlin.nightly",
                "30 2 * * *",
                "Europe/Berlin",
                "Nightly rollup, Berlin time",
            ),
            (
                "reports.weekday",
                "0 8 * * 1-5",
                "Europe/Berlin",
                "Weekday morning report",
            ),
            ("cleanup.hourly", "0 * * * *", "UTC", "Hourly cleanup"),
            (
                "heartbeat.minutely",
                "* * * * *",
                "UTC",
                "Proves the scheduler is alive",
            ),
        ] {
            console
                .rest_post(
                    "/jobs",
                    json!({"job_key": key, "target": "system.heartbeat", "schedule_type": "recurring",
                           "cron_expression": expression, "timezone": timezone, "description": description}),
                )
                .await;
        }
        // A failing job, run once, so the run strips and the runs view have some red.
        let billing = console
            .rest_post(
                "/jobs",
                json!({"job_key": "billing.sync", "target": "system.fail", "schedule_type": "recurring",
                       "cron_expression": "0 */6 * * *", "payload": {"message": "upstream returned 503"},
                       "description": "Pulls invoices from the billing provider"}),
            )
            .await;
        let billing = billing["id"].as_str().expect("an id").to_owned();
        console.rest_post(&format!("/jobs/{billing}/run-now"), json!({})).await;
        let cleanup = console.rest_get("/jobs/by-key/cleanup.hourly").await;
        let id = cleanup["id"].as_str().expect("an id").to_owned();
        let response = console
            .http
            .patch(format!("{}{REST}/jobs/{id}/pause", console.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"reason": "Waiting for the storage migration"}))
            .send()
            .await
            .expect("pause");
        assert_eq!(response.status(), 200);
        // For the Attention view: a job whose target no build has (through the store: the API
        // refuses unknown targets), and a pause that is three days old.
        tests::fixtures::recurring(
            &console._db.pool,
            "legacy.export",
            "removed.target",
            "0 3 * * *",
            json!({}),
        )
        .await;
        sqlx::query(
            "UPDATE cron_job_definitions SET paused_at = now() - interval '3 days' WHERE job_key = 'cleanup.hourly'",
        )
        .execute(&console._db.pool)
        .await
        .expect("age the pause");
        console
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn rest_get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{REST}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON")
    }

    async fn rest_post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{REST}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert!(response.status().is_success(), "POST {path}: {}", response.status());
        response.json().await.expect("JSON")
    }

    async fn sign_in(&self, browser: &Browser, token: &str) {
        browser.open(&self.url("/admin/login")).await;
        browser.fill("login-token", token).await;
        browser.submit("/admin/login", "Sign in").await;
        let url = browser.client.current_url().await.expect("url");
        assert_eq!(url.path(), "/admin/jobs", "signed in and sent to the jobs");
    }
}

/// Where screenshots go: `docs/console/` with `UPDATE_SCREENSHOTS=1` (to refresh the README's),
/// else `target/console-screenshots/`, so an ordinary test run leaves the work tree clean.
fn screenshots_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        root.join("docs/console")
    } else {
        root.join("target/console-screenshots")
    };
    std::fs::create_dir_all(&dir).expect("the screenshots directory");
    dir
}

/// Checks the current page at 1280 and 390 px: no serious axe violation, no console error, no
/// sideways scroll on a phone; saves both screenshots as `docs/console/<name>-<width>.png`.
async fn check_page(browser: &Browser, name: &str) {
    let violations = browser.accessibility_violations().await;
    assert!(
        violations.is_empty(),
        "{name}: accessibility violations: {violations:#?}"
    );
    browser
        .screenshot(&screenshots_dir().join(format!("{name}-1280.png")), 1280)
        .await;
    browser.resize(390, 844).await;
    assert!(
        !browser.has_horizontal_scroll().await,
        "{name} scrolls sideways at 390 px"
    );
    browser
        .screenshot(&screenshots_dir().join(format!("{name}-390.png")), 390)
        .await;
    browser.resize(1280, 900).await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{name}: browser console errors: {errors:#?}");
}

async fn job_id(console: &Console, key: &str) -> String {
    console.rest_get(&format!("/jobs/by-key/{key}")).await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn an_admin_signs_in_and_manages_jobs_without_curl() {
    let started = Instant::now();
    let console = Console::start().await;
    let browser = Browser::start().await;

    // No session: every page sends you to sign in.
    browser.open(&console.url("/admin/jobs")).await;
    let url = browser.client.current_url().await.expect("url");
    assert_eq!(url.path(), "/admin/login");
    check_page(&browser, "sign-in").await;
    console.sign_in(&browser, ADMIN_TOKEN).await;

    // The jobs view lists every seeded job with the next run the REST API computes.
    let text = browser.text().await;
    for key in [
        "berlin.nightly",
        "reports.weekday",
        "cleanup.hourly",
        "heartbeat.minutely",
    ] {
        assert!(text.contains(key), "the jobs view lists {key}");
    }
    assert!(
        text.contains("At 08:00, on Monday through Friday, in Europe/Berlin")
            || text.contains("At 08:00, Monday through Friday, in Europe/Berlin")
    );
    let weekday = console.rest_get("/jobs/by-key/reports.weekday").await;
    let next: DateTime<chrono::Utc> = weekday["next_run_at"]
        .as_str()
        .expect("next run")
        .parse()
        .expect("time");
    let row = browser
        .client
        .find(Locator::Css("tr[data-job=\"reports.weekday\"] td.next-run"))
        .await
        .expect("the row");
    assert!(row
        .text()
        .await
        .expect("text")
        .contains(&next.format("%Y-%m-%d %H:%M:%S UTC").to_string()));
    assert!(text.contains("Paused by ops"), "who paused and why: {text}");
    assert!(text.contains("Waiting for the storage migration"));
    check_page(&browser, "jobs").await;

    // Filter by status.
    browser.open(&console.url("/admin/jobs?status=paused")).await;
    let text = browser.text().await;
    assert!(
        text.contains("cleanup.hourly") && !text.contains("reports.weekday"),
        "{text}"
    );

    // The Berlin 02:30 job warns about spring forward.
    let berlin = job_id(&console, "berlin.nightly").await;
    browser.open(&console.url(&format!("/admin/jobs/{berlin}"))).await;
    assert!(browser
        .text()
        .await
        .contains("clock moves forward: runs at 03:00 instead of 02:30"));
    check_page(&browser, "job").await;

    // Pause: a too-short reason is refused beside the field; a good one pauses, by `ops`.
    let pause = format!("/admin/jobs/{berlin}/pause");
    browser.fill("pause-reason", "no").await;
    browser.submit(&pause, "Pause").await;
    let error = browser
        .client
        .find(Locator::Id("pause-reason-error"))
        .await
        .expect("a field error");
    assert!(error.text().await.expect("text").contains("5 to 300 characters"));
    // The refused form is answered 400, which Chromium logs; that one entry is expected.
    let logged = browser.console_errors().await;
    assert!(
        logged.iter().all(|e| e.contains("/pause") && e.contains("400")),
        "{logged:#?}"
    );
    browser.fill("pause-reason", "Upstream API is down until noon").await;
    browser.submit(&pause, "Pause").await;
    let job = console.rest_get(&format!("/jobs/{berlin}")).await;
    assert_eq!(job["status"], "paused");
    assert_eq!(job["paused_by"], "ops");
    assert_eq!(job["pause_reason"], "Upstream API is down until noon");
    browser.submit(&format!("/admin/jobs/{berlin}/resume"), "Resume").await;
    assert_eq!(console.rest_get(&format!("/jobs/{berlin}")).await["status"], "active");

    // Run now: the run page shows it, and it finishes.
    browser
        .submit(&format!("/admin/jobs/{berlin}/run-now"), "Run now")
        .await;
    let url = browser.client.current_url().await.expect("url");
    assert!(url.path().starts_with("/admin/runs/"), "sent to the run: {url}");
    browser.wait_for_text("succeeded", Duration::from_secs(60)).await;
    assert!(browser.text().await.contains("manual by ops"));
    check_page(&browser, "run").await;

    // New version from the form: the job view says what changed.
    browser.open(&console.url(&format!("/admin/jobs/{berlin}"))).await;
    browser.fill("new-version-cron_expression", "45 2 * * *").await;
    browser
        .submit(&format!("/admin/jobs/{berlin}/new-version"), "Save as new version")
        .await;
    let text = browser.text().await;
    assert!(text.contains("berlin.nightly v2"), "{text}");
    assert!(text.contains("cron expression: 30 2 * * * → 45 2 * * *"), "{text}");
    assert!(
        text.contains("clock moves forward: runs at 03:00 instead of 02:45"),
        "{text}"
    );

    // A POST without the CSRF token is refused, with the browser's own session cookie.
    let cookie = browser
        .client
        .get_named_cookie("cronjobs_session")
        .await
        .expect("a session cookie");
    let current = job_id(&console, "berlin.nightly").await;
    let forged = console
        .http
        .post(console.url(&format!("/admin/jobs/{current}/pause")))
        .header("Cookie", format!("cronjobs_session={}", cookie.value()))
        .form(&[("reason", "A forged pause request")])
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), 403);
    assert_eq!(console.rest_get(&format!("/jobs/{current}")).await["status"], "active");

    // The other views.
    for (path, name, expect) in [
        ("/admin/runs", "runs", "Runs"),
        (
            "/admin/runs?status=succeeded&trigger_type=manual",
            "runs-filtered",
            "manual",
        ),
        ("/admin/targets", "targets", "system.heartbeat"),
        ("/admin/schedulers", "schedulers", "alive"),
        ("/admin/attention", "attention", "legacy.export — target removed.target"),
    ] {
        browser.open(&console.url(path)).await;
        assert!(browser.text().await.contains(expect), "{path} shows {expect}");
        check_page(&browser, name).await;
    }
    // Attention lists the long pause too (its text was checked above for the orphaned job).
    browser.open(&console.url("/admin/attention")).await;
    let text = browser.text().await;
    let paused = text.split("Paused for more than a day").nth(1).unwrap_or_default();
    assert!(
        paused.contains("cleanup.hourly") && paused.contains("3 d ago"),
        "{text}"
    );

    // Screenshots of the jobs and the job once they have history.
    let failed = format!("{REST}/runs?job_key=billing.sync&status=failed");
    tests::fixtures::wait_for(Duration::from_secs(60), "billing.sync's run to fail", || async {
        let page: Value = console
            .http
            .get(console.url(&failed))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (!page["items"].as_array()?.is_empty()).then_some(())
    })
    .await;
    // The failing job's incident heads Attention, one click from its failing run.
    browser.open(&console.url("/admin/attention")).await;
    let text = browser.text().await;
    let incidents = text
        .split("Open incidents")
        .nth(1)
        .and_then(|rest| rest.split("Missed runs").next())
        .unwrap_or_default();
    assert!(
        incidents.contains("billing.sync") && incidents.contains("last failing run"),
        "{text}"
    );
    check_page(&browser, "attention").await;
    // Someone takes the incident on, then resolves it by hand, each with a note.
    let open = console.rest_get("/incidents?status=open&job_key=billing.sync").await;
    let incident = open["items"][0]["id"].as_str().expect("an open incident").to_owned();
    let action = format!("/admin/incidents/{incident}/acknowledge");
    browser
        .fill(&format!("note-{incident}"), "Asked billing about the 503s")
        .await;
    browser.submit(&action, "Acknowledge").await;
    let text = browser.text().await;
    assert!(
        text.contains("acknowledged by ops: Asked billing about the 503s"),
        "{text}"
    );
    browser
        .fill(&format!("note-{incident}"), "Provider fixed it; next sync is fine")
        .await;
    browser.submit(&action, "Resolve").await;
    let resolved = console.rest_get("/incidents?job_key=billing.sync").await;
    assert_eq!(
        (
            resolved["items"][0]["status"].as_str(),
            resolved["items"][0]["resolver"].as_str()
        ),
        (Some("resolved"), Some("ops")),
        "{resolved}"
    );
    browser.open(&console.url("/admin/jobs")).await;
    check_page(&browser, "jobs").await;
    browser.open(&console.url(&format!("/admin/jobs/{current}"))).await;
    check_page(&browser, "job").await;
    browser.close().await;
    eprintln!("console admin flow took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_viewer_sees_everything_and_changes_nothing() {
    let console = Console::start().await;
    let browser = Browser::start().await;
    console.sign_in(&browser, VIEWER_TOKEN).await;
    assert!(browser.text().await.contains("victor · viewer"));
    let id = job_id(&console, "reports.weekday").await;
    browser.open(&console.url(&format!("/admin/jobs/{id}"))).await;
    assert!(browser.text().await.contains("Weekday morning report"));
    let buttons = browser
        .client
        .find_all(Locator::Css("form[action^=\"/admin/jobs/\"] button"))
        .await
        .expect("find");
    assert!(buttons.is_empty(), "a viewer sees no action buttons");

    // A forged POST with the viewer's session and a valid CSRF token: 403, nothing changes.
    let cookie = browser
        .client
        .get_named_cookie("cronjobs_session")
        .await
        .expect("a session cookie");
    let csrf = browser
        .client
        .find(Locator::Css("form.signout input[name=csrf]"))
        .await
        .expect("the sign-out form")
        .attr("value")
        .await
        .expect("attr")
        .expect("a CSRF token");
    let forged = console
        .http
        .post(console.url(&format!("/admin/jobs/{id}/pause")))
        .header("Cookie", format!("cronjobs_session={}", cookie.value()))
        .form(&[("reason", "A viewer tries to pause"), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), 403);
    assert_eq!(console.rest_get(&format!("/jobs/{id}")).await["status"], "active");

    // The REST API: reads yes, writes 403.
    let read = console
        .http
        .get(console.url(&format!("{REST}/jobs")))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(read.status(), 200);
    let write = console
        .http
        .patch(console.url(&format!("{REST}/jobs/{id}/pause")))
        .bearer_auth(VIEWER_TOKEN)
        .json(&json!({"reason": "A viewer tries to pause"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(write.status(), 403);

    // Signing out ends the session.
    browser.submit("/admin/logout", "Sign out").await;
    browser.open(&console.url("/admin/jobs")).await;
    assert_eq!(browser.client.current_url().await.expect("url").path(), "/admin/login");
    browser.close().await;
}

#[tokio::test]
async fn cronjobs_dev_prints_a_one_time_sign_in_link() {
    let db = TestDb::create().await;
    let port = tests::fixtures::free_port().to_string();
    let dev = Cronjobs::spawn(&["dev"], &[("DATABASE_URL", db.url.as_str()), ("PORT", port.as_str())]);
    let link = tests::fixtures::wait_for(Duration::from_secs(30), "the sign-in link", || async {
        let output = dev.output();
        let line = output.lines().find(|l| l.trim_start().starts_with("sign in"))?;
        line.split_whitespace()
            .find(|w| w.starts_with("http"))
            .map(str::to_owned)
    })
    .await;
    let output = dev.output();
    assert!(
        output.contains(&format!("console  http://127.0.0.1:{port}/admin")),
        "{output}"
    );
    let token_line = output
        .lines()
        .find(|l| l.trim_start().starts_with("token"))
        .expect("a token line");
    let token = token_line.split_whitespace().nth(1).expect("the token");
    assert!(!link.contains(token), "the link carries a code, not the token");

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let first = http.get(&link).send().await.expect("GET the link");
    assert_eq!(first.status(), 303);
    assert_eq!(first.headers()["location"], "/admin/jobs");
    let cookie = first
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cronjobs_session="))
        .expect("a session cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("name=value");
    let jobs = http
        .get(format!("http://127.0.0.1:{port}/admin/jobs"))
        .header("Cookie", session)
        .send()
        .await
        .expect("GET /admin/jobs");
    assert_eq!(jobs.status(), 200);
    let csp = jobs.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        !csp.contains("unsafe-inline") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(jobs.headers()["x-frame-options"], "DENY");
    assert!(jobs.text().await.expect("body").contains("dev · admin"));
    let again = http.get(&link).send().await.expect("GET the link again");
    assert_eq!(again.status(), 401, "the link works once");
}

#[tokio::test]
async fn viewer_tokens_read_every_rest_route_and_write_none() {
    let db = TestDb::create().await;
    let viewers = format!("victor:{VIEWER_TOKEN}");
    let (_api, base) = api_process(&db, ADMIN_TOKEN, &[("CRON_VIEWER_TOKENS", viewers.as_str())]).await;
    let http = reqwest::Client::new();
    let routes: Vec<_> = cron_runtime::web::api::routes()
        .into_iter()
        .filter(|r| r.admin)
        .collect();
    for route in routes {
        let path = route
            .path
            .replace("{jobId}", &uuid::Uuid::now_v7().to_string())
            .replace("{runId}", &uuid::Uuid::now_v7().to_string())
            .replace("{jobKey}", "no.such.job");
        let method = reqwest::Method::from_bytes(route.verb.as_str().as_bytes()).expect("method");
        let status = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(VIEWER_TOKEN)
            .json(&json!({}))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16();
        let what = format!("{} {}", route.verb.as_str(), route.path);
        if route.verb == cron_runtime::web::api::Verb::Get {
            assert!(![401, 403].contains(&status), "a viewer may read {what}: got {status}");
        } else {
            assert_eq!(status, 403, "a viewer may not {what}");
        }
    }
}
