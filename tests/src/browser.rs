//! A headless Chromium driven through chromedriver (WebDriver), one per test.
//!
//! Each browser gets its own chromedriver on a free port and a fresh profile directory, so
//! tests running in parallel processes (nextest) share nothing. Both are stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::fixtures::{free_port, http_get, wait_for};

/// axe-core (MPL-2.0, see tests/assets/axe-core.LICENSE), injected to audit accessibility.
const AXE: &str = include_str!("../assets/axe.min.js");

/// A browser session and the chromedriver serving it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    driver_url: String,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a 1280 × 900 window.
    pub async fn start() -> Browser {
        let port = free_port();
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver} ({e}): run scripts/ensure-browser"));
        let driver_url = format!("http://127.0.0.1:{port}");
        let status = format!("{driver_url}/status");
        wait_for(Duration::from_secs(30), "chromedriver to answer", || http_get(&status)).await;
        let profile = std::env::temp_dir().join(format!("cronjobs-chromium-{}", uuid::Uuid::new_v4()));
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        args.push("--hide-scrollbars".to_owned());
        let mut options = json!({ "args": args });
        if let Ok(binary) = std::env::var("CHROMIUM") {
            options["binary"] = json!(binary);
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let client = ClientBuilder::native()
            .capabilities(capabilities)
            .connect(&driver_url)
            .await
            .expect("start a Chromium session");
        Browser {
            client,
            driver,
            driver_url,
            profile,
        }
    }

    /// Opens `url` and waits for the document to be ready.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
        self.wait_ready().await;
    }

    /// Waits until the document has loaded.
    pub async fn wait_ready(&self) {
        let client = &self.client;
        wait_for(Duration::from_secs(30), "the page to load", || async move {
            let state = client.execute("return document.readyState", vec![]).await.ok()?;
            (state == json!("complete")).then_some(())
        })
        .await;
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        let body = self.client.find(Locator::Css("body")).await.expect("a body");
        body.text().await.unwrap_or_default()
    }

    /// Waits until the page's text contains `needle`, reloading it between looks.
    pub async fn wait_for_text(&self, needle: &str, timeout: Duration) {
        wait_for(timeout, &format!("the page to show {needle:?}"), || async move {
            if self.text().await.contains(needle) {
                return Some(());
            }
            let _ = self.client.refresh().await;
            self.wait_ready().await;
            None
        })
        .await;
    }

    /// Types `value` into the field labelled by id `id` (replacing what is there).
    pub async fn fill(&self, id: &str, value: &str) {
        let input = self.client.find(Locator::Id(id)).await.expect("the field");
        input.clear().await.expect("clear the field");
        input.send_keys(value).await.expect("type");
    }

    /// Clicks the button with text `label` inside the form posting to `action`, then waits.
    pub async fn submit(&self, action: &str, label: &str) {
        let selector = format!("form[action=\"{action}\"] button[type=submit]");
        let button = self.client.find(Locator::Css(&selector)).await.expect("the button");
        assert_eq!(button.text().await.unwrap_or_default(), label);
        // Mark this document, so the wait below ends only once the next one has loaded.
        self.client
            .execute("window.__cronjobsOld = true; return true", vec![])
            .await
            .expect("mark the page");
        button.click().await.expect("click");
        let client = &self.client;
        wait_for(Duration::from_secs(30), "the next page to load", || async move {
            let state = client
                .execute("return window.__cronjobsOld ? 'old' : document.readyState", vec![])
                .await
                .ok()?;
            (state == json!("complete")).then_some(())
        })
        .await;
    }

    /// Resizes the window to `width` × `height`.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.expect("resize");
    }

    /// Whether the page scrolls sideways.
    pub async fn has_horizontal_scroll(&self) -> bool {
        let value = self
            .client
            .execute(
                "return document.documentElement.scrollWidth > document.documentElement.clientWidth",
                vec![],
            )
            .await
            .expect("measure the page");
        value == json!(true)
    }

    /// axe-core's serious and critical violations on the current page.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        self.client
            .execute(&format!("{AXE}\n;return true;"), vec![])
            .await
            .expect("inject axe-core");
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then(r => done(r.violations
                     .filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
                   .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .expect("run axe-core");
        serde_json::from_value(result).unwrap_or_default()
    }

    /// Errors the browser console logged since the last call (chromedriver's log endpoint).
    pub async fn console_errors(&self) -> Vec<String> {
        let Ok(session) = self.client.session_id().await else {
            return Vec::new();
        };
        let Some(session) = session else { return Vec::new() };
        let url = format!("{}/session/{session}/se/log", self.driver_url);
        let response = reqwest::Client::new()
            .post(&url)
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .expect("read the browser log");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        body["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a PNG of the whole page (up to 3000 px tall) at `width` to `path`, then restores
    /// a `width` × 900 window.
    pub async fn screenshot(&self, path: &std::path::Path, width: u32) {
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .ok()
            .and_then(|h| h.as_u64())
            .unwrap_or(900)
            .clamp(600, 3000) as u32;
        self.resize(width, height).await;
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(path, png).expect("write the screenshot");
        self.resize(width, 900).await;
    }

    /// Ends the session (also done, less politely, on drop).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
