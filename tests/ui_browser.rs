//! The browser pages in a real browser: Debian's headless `chromium`, driven by `chromedriver` over
//! the W3C WebDriver protocol, against the real `edgeprom` binary scraping itself.
//!
//! It types an expression on `/graph` (through completion), runs it, reads the table, switches to
//! the graph and counts the pixels the series drew; then loads every other page on a desktop and a
//! 360 px wide phone viewport, in light and dark themes. Any JavaScript console error, any request
//! answered with a 4xx/5xx or failing at the network level, and any API error shown on a page fails
//! the test; a screenshot of the failing page goes to `$CARGO_TARGET_TMPDIR/ui_browser/`.
//!
//! Needs `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`).
//! `EDGEPROM_UI_BASE_URL=http://127.0.0.1:PORT/` runs the same checks against a server that is
//! already running (a development aid) instead of starting the binary.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgeprom::cli::http;
use serde_json::{json, Value};

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(20);
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The pages besides /graph, with a text each must show once loaded.
const PAGES: &[(&str, &str)] = &[
    ("targets", "edgeprom"),
    ("alerts", "Firing"),
    ("rules", ""),
    ("status", "Version"),
    ("flags", "--web.listen-address"),
    ("config", "scrape_configs"),
    ("tsdb-status", "Series count by metric name"),
];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A child process killed on drop, so a failing test leaves nothing running.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The edgeprom binary with a temp data dir and a config that scrapes itself every second.
struct Server {
    _proc: Proc,
    base: String,
    _dir: tempfile::TempDir,
}

fn start_server(route_prefix: Option<&str>) -> Server {
    start_server_with(route_prefix, true)
}

/// Starts the binary; with `wait_for_data`, returns only once `up` from the self-scrape is stored.
fn start_server_with(route_prefix: Option<&str>, wait_for_data: bool) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let prefix = route_prefix.unwrap_or("");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: edgeprom\n    \
         metrics_path: {prefix}/metrics\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    );
    let cfg_path = dir.path().join("edgeprom.yml");
    std::fs::write(&cfg_path, config).expect("write config");
    let data = dir.path().join("data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgeprom"));
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--config.file={}", cfg_path.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(p) = route_prefix {
        cmd.arg(format!("--web.route-prefix={p}"));
    }
    let child = cmd.spawn().expect("start edgeprom");
    let mut proc = Proc(child);
    let base = format!("http://127.0.0.1:{port}{prefix}/");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Some(status)) = proc.0.try_wait() {
            panic!("edgeprom exited early with {status}");
        }
        let probe = if wait_for_data {
            "api/v1/query?query=1"
        } else {
            "api/v1/status/buildinfo"
        };
        if let Ok(r) = http::get(&format!("{base}{probe}"), Duration::from_secs(2)) {
            if r.status == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "edgeprom did not answer on {base}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Wait for the first self-scrape, so `up` has a sample to show.
    while wait_for_data && !has_up(&base) {
        assert!(
            Instant::now() < deadline,
            "edgeprom never stored `up` from scraping itself"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Server {
        _proc: proc,
        base,
        _dir: dir,
    }
}

fn has_up(base: &str) -> bool {
    http::get(
        &format!("{base}api/v1/query?query=up"),
        Duration::from_secs(2),
    )
    .is_ok_and(|r| r.text().contains("\"__name__\":\"up\""))
}

/// A chromedriver + headless chromium session.
struct Browser {
    _driver: Proc,
    url: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install -y chromium chromium-driver)");
        let driver = Proc(driver);
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        while !http::get(&format!("{url}/status"), Duration::from_secs(2))
            .is_ok_and(|r| r.text().contains("\"ready\":true"))
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900", "--no-default-browser-check",
                    "--disable-default-apps", "--disable-extensions", "--disable-client-side-phishing-detection",
                    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider",
                    // Only loopback may be reached: any other name fails to resolve inside the browser.
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                    format!("--user-data-dir={}", profile.path().display())]
            },
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"}
        }}});
        let r = http::post_json(&format!("{url}/session"), &caps.to_string(), HTTP_TIMEOUT)
            .expect("new session");
        let v: Value = serde_json::from_slice(&r.body).expect("session JSON");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        let b = Browser {
            _driver: driver,
            url,
            session,
            _profile: profile,
        };
        // Whatever the browser did before our first page is not the pages' doing.
        b.goto("about:blank");
        let _ = b.problems();
        b
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.url, self.session);
        let text = body.to_string();
        let body = (method == "POST").then_some(text.as_bytes());
        let r = http::request(
            method,
            &url,
            &[("Content-Type", "application/json")],
            body,
            HTTP_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("webdriver {path}: {e}"));
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        assert!(
            r.status < 400,
            "webdriver {method} {path}: {} {v}",
            r.status
        );
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// Polls `script` until it returns a truthy value.
    fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.js(script);
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return v;
            }
            if Instant::now() > deadline {
                self.fail(&format!("timed out waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Console errors and failed requests since the last call.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let logs = self.call("POST", "/se/log", json!({"type": "browser"}));
        for e in logs.as_array().into_iter().flatten() {
            if e["level"] == "SEVERE" {
                out.push(format!("console: {}", e["message"].as_str().unwrap_or("")));
            }
        }
        let perf = self.call("POST", "/se/log", json!({"type": "performance"}));
        let mut urls = std::collections::HashMap::new();
        for e in perf.as_array().into_iter().flatten() {
            let Ok(m) = serde_json::from_str::<Value>(e["message"].as_str().unwrap_or("")) else {
                continue;
            };
            let (method, params) = (&m["message"]["method"], &m["message"]["params"]);
            if method == "Network.requestWillBeSent" {
                urls.insert(
                    params["requestId"].to_string(),
                    params["request"]["url"].to_string(),
                );
            } else if method == "Network.responseReceived" {
                let status = params["response"]["status"].as_f64().unwrap_or(0.0);
                if status >= 400.0 {
                    out.push(format!("HTTP {status} for {}", params["response"]["url"]));
                }
            } else if method == "Network.loadingFailed" && params["canceled"] != json!(true) {
                let url = urls.get(&params["requestId"].to_string());
                out.push(format!("request failed: {} {url:?}", params["errorText"]));
            }
        }
        out
    }

    fn screenshot(&self, name: &str) -> Option<PathBuf> {
        let png = self.call("GET", "/screenshot", Value::Null);
        let bytes = base64_decode(png.as_str()?)?;
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui_browser");
        std::fs::create_dir_all(&dir).ok()?;
        let path = dir.join(format!("{}.png", name.replace(['/', '?', '='], "_")));
        std::fs::File::create(&path).ok()?.write_all(&bytes).ok()?;
        Some(path)
    }

    fn fail(&self, why: &str) -> ! {
        let page = self.js("return location.pathname + location.search");
        let shot = self.screenshot(page.as_str().unwrap_or("page").trim_start_matches('/'));
        let body = self.js("return document.body ? document.body.innerText.slice(0, 2000) : ''");
        panic!("{why}\npage: {page}\nscreenshot: {shot:?}\ntext: {body}");
    }

    fn check_clean(&self, page: &str) {
        let p = self.problems();
        if !p.is_empty() {
            self.fail(&format!("{page}: {}", p.join("\n")));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.url, self.session);
        let _ = http::request("DELETE", &url, &[], None, Duration::from_secs(10));
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    Some(out)
}

/// Counts canvas pixels close to the first series colour (#1f77b4): the line the chart drew.
const INKED_PIXELS: &str = "const c = document.querySelector('.chart canvas'); if (!c) return 0; \
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; \
    for (let i = 0; i < d.length; i += 4) { if (d[i+3] > 150 && Math.abs(d[i]-31) < 45 && \
    Math.abs(d[i+1]-119) < 45 && Math.abs(d[i+2]-180) < 45) n++; } return n;";

const LOADED: &str = "const c = document.getElementById('content'); \
    return c && !c.innerText.includes('Loading…') && document.querySelectorAll('#content .apierror').length === 0 \
    ? c.innerText : (document.querySelector('#content .apierror') ? 'ERROR: ' + document.querySelector('#content .apierror').innerText : '');";

fn check_graph(b: &Browser, base: &str) {
    b.goto(&format!("{base}graph?g0.range_input=1m&g0.tab=1"));
    b.wait_for(
        "the expression box",
        "return document.querySelector('textarea.expr')",
    );
    b.check_clean("graph (empty)");
    // Completion: "u" offers the metric `up`; Tab takes it.
    b.type_into("textarea.expr", "u");
    b.wait_for(
        "completion of `up`",
        "return [...document.querySelectorAll('.completions li')].some(li => li.firstChild.textContent === 'up')",
    );
    b.js("const t = document.querySelector('textarea.expr'); \
          const i = [...document.querySelectorAll('.completions li')].findIndex(li => li.firstChild.textContent === 'up'); \
          for (let k = 0; k < i; k++) t.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowDown', bubbles: true}));");
    b.type_into("textarea.expr", "\u{E004}"); // Tab
    let v = b.js("return document.querySelector('textarea.expr').value");
    if v != json!("up") {
        b.fail(&format!("completion gave {v}"));
    }
    b.click(".ptop button.primary");
    let table = b.wait_for(
        "the result table",
        "const t = document.querySelector('.tabbody table'); return t && t.innerText.includes('up{') ? t.innerText : \
         (document.querySelector('.tabbody .error') || {}).innerText",
    );
    if !table.as_str().unwrap_or("").contains("job=\"edgeprom\"") {
        b.fail(&format!("table lacks the self-scrape series: {table}"));
    }
    let url = b.js("return location.search");
    assert!(
        url.as_str().unwrap_or("").contains("g0.expr=up"),
        "state in URL: {url}"
    );
    // Graph tab: a legend entry and ink on the canvas.
    b.click(".tabs button[role=tab]:nth-child(2)");
    b.wait_for(
        "the legend",
        "return document.querySelectorAll('.legend li .swatch').length",
    );
    let ink = b.wait_for(
        "a drawn line",
        &format!("const n = (() => {{ {INKED_PIXELS} }})(); return n > 20 ? n : 0;"),
    );
    assert!(ink.as_u64().unwrap_or(0) > 20, "ink {ink}");
    // Hover read-out.
    b.js("const c = document.querySelectorAll('.chart canvas')[1]; const r = c.getBoundingClientRect(); \
          c.dispatchEvent(new PointerEvent('pointermove', {clientX: r.right - 30, clientY: r.top + r.height / 2, bubbles: true}));");
    b.wait_for(
        "the hover read-out",
        "const t = document.querySelector('.tooltip'); return t && t.style.display === 'block' && t.querySelectorAll('.s .swatch').length > 0",
    );
    b.check_clean("graph");
    // The state in the URL restores the panel on reload, on the graph tab.
    let url = b.js("return location.href");
    b.goto(url.as_str().unwrap_or(""));
    b.wait_for(
        "the restored graph",
        "return document.querySelector('textarea.expr').value === 'up' && document.querySelectorAll('.legend li .swatch').length",
    );
    // A second panel, and a bad expression shows the server's error.
    b.click("button.addpanel");
    b.wait_for(
        "a second panel",
        "return document.querySelectorAll('section.panel').length === 2",
    );
    // Keyboard only: the new panel's box has the focus; Escape closes completion, Enter runs.
    let focused =
        b.js("return document.activeElement === document.querySelectorAll('textarea.expr')[1]");
    assert_eq!(
        focused,
        json!(true),
        "the new panel's expression box has the focus"
    );
    b.type_into(
        "section.panel:nth-child(2) textarea.expr",
        "sum(up)\u{E00C}\u{E007}",
    );
    b.wait_for(
        "the second panel's table after Enter",
        "const t = document.querySelectorAll('section.panel')[1].querySelector('.tabbody table'); \
         return t && t.innerText.includes('{}')",
    );
    b.check_clean("graph (reloaded)");
}

/// The expression box's completion contexts and the duration parser, as the page computes them.
fn check_graph_helpers(b: &Browser) {
    let cases = json!([
        ["up{job=\"", {"kind": "value", "label": "job", "metric": "up", "prefix": ""}],
        ["up{job=\"no", {"kind": "value", "label": "job", "metric": "up", "prefix": "no"}],
        ["rate(node_cpu_seconds_total{mo", {"kind": "label", "metric": "node_cpu_seconds_total", "prefix": "mo"}],
        ["up{job=\"a\",", {"kind": "label", "metric": "up", "prefix": ""}],
        ["sum by (jo", {"kind": "label", "prefix": "jo"}],
        ["sum without (job, inst", {"kind": "label", "prefix": "inst"}],
        ["ra", {"kind": "metric", "prefix": "ra"}],
        ["sum(rate(node_c", {"kind": "metric", "prefix": "node_c"}],
        ["rate(up[5", null],
        ["up{job=", null],
        ["label_replace(up, \"dst", null]
    ]);
    let got = b.js(&format!(
        "return {cases}.map(([text, want]) => {{ const c = EPGraph.context(text, text.length);          if (want === null) return c === null ? null : [text, c];          if (!c) return [text, c];          for (const k of Object.keys(want)) if (c[k] !== want[k]) return [text, c]; return null; }}).filter(x => x);"
    ));
    assert_eq!(got, json!([]), "completion contexts that differ");
    let durations = b.js(
        "return [['1h30m', 5400000], ['90', 90000], ['2d', 172800000], ['500ms', 500], ['1w', 604800000],          ['5x', null], ['', null], ['h', null]].filter(([s, want]) => EPGraph.parseDuration(s) !== want);",
    );
    assert_eq!(durations, json!([]), "durations that differ");
}

fn check_pages(b: &Browser, base: &str, label: &str) {
    for (page, want) in PAGES {
        b.goto(&format!("{base}{page}"));
        let text = b.wait_for(&format!("{page} to load"), LOADED);
        let text = text.as_str().unwrap_or("");
        if text.starts_with("ERROR: ") {
            b.fail(&format!("{page} ({label}) shows an API error: {text}"));
        }
        if !text.contains(want) {
            b.fail(&format!("{page} ({label}) lacks {want:?}"));
        }
        let overflow = b.js("return document.documentElement.scrollWidth - window.innerWidth");
        if overflow.as_i64().unwrap_or(0) > 1 {
            b.fail(&format!(
                "{page} ({label}) scrolls sideways by {overflow}px"
            ));
        }
        b.check_clean(&format!("{page} ({label})"));
    }
}

fn run_all(base: &str) {
    let b = Browser::start();
    check_graph(&b, base);
    check_graph_helpers(&b);
    check_pages(&b, base, "desktop");
    // A phone: 360 px wide, dark theme.
    b.call("POST", "/window/rect", json!({"width": 360, "height": 740}));
    b.call(
        "POST",
        "/goog/cdp/execute",
        json!({"cmd": "Emulation.setEmulatedMedia", "params": {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}}),
    );
    check_pages(&b, base, "phone, dark");
    let bg = b.js("return getComputedStyle(document.body).backgroundColor");
    assert_eq!(bg, json!("rgb(20, 23, 26)"), "dark theme background");
    b.goto(&format!("{base}graph"));
    b.wait_for(
        "the graph page on a phone",
        "return document.querySelector('textarea.expr')",
    );
    let overflow = b.js("return document.documentElement.scrollWidth - window.innerWidth");
    assert!(
        overflow.as_i64().unwrap_or(0) <= 1,
        "graph scrolls sideways on a phone: {overflow}"
    );
    b.check_clean("graph (phone)");
}

#[test]
fn pages_work_in_headless_chromium() {
    if let Ok(base) = std::env::var("EDGEPROM_UI_BASE_URL") {
        return run_all(&base);
    }
    let server = start_server(None);
    run_all(&server.base);
}

#[test]
fn pages_work_under_a_route_prefix() {
    if std::env::var("EDGEPROM_UI_BASE_URL").is_ok() {
        return;
    }
    let server = start_server(Some("/edge"));
    let b = Browser::start();
    check_graph(&b, &server.base);
    check_pages(&b, &server.base, "route prefix");
}

/// The binary serves every page and asset with caching headers and gzip, below the route prefix
/// only, and sends `/` to the graph page.
#[test]
fn binary_serves_pages_with_etag_gzip_and_prefix() {
    if std::env::var("EDGEPROM_UI_BASE_URL").is_ok() {
        return;
    }
    let t = Duration::from_secs(10);
    for prefix in [None, Some("/edge")] {
        let server = start_server_with(prefix, false);
        let base = &server.base;
        for page in edgeprom::web::ui::pages() {
            let url = format!("{base}{page}");
            let r =
                http::request("GET", &url, &[("Accept-Encoding", "gzip")], None, t).expect(page);
            assert_eq!(r.status, 200, "{url}");
            assert_eq!(r.header("content-encoding"), Some("gzip"), "{url}");
            let etag = r.header("etag").expect("etag").to_string();
            let again = http::request(
                "GET",
                &url,
                &[("Accept-Encoding", "gzip"), ("If-None-Match", &etag)],
                None,
                t,
            )
            .expect(page);
            assert_eq!(again.status, 304, "{url}");
            let plain = http::get(&url, t).expect(page);
            assert!(plain.text().contains("<!DOCTYPE html>"), "{url}");
            // Every asset the page names loads from the same (prefixed) place.
            for asset in plain.text().split('"').filter(|s| s.starts_with("static/")) {
                let r = http::get(&format!("{base}{asset}"), t).expect(asset);
                assert_eq!(r.status, 200, "{base}{asset}");
                assert!(r.header("cache-control").is_some(), "{asset}");
            }
        }
        let root = http::get(base, t).expect("root");
        assert!(
            (300..400).contains(&root.status)
                && root
                    .header("location")
                    .is_some_and(|l| l.ends_with("graph")),
            "/ must redirect to graph: {} {:?}",
            root.status,
            root.header("location")
        );
        if prefix.is_some() {
            let port_base = base.trim_end_matches("edge/");
            let r = http::get(&format!("{port_base}graph"), t).expect("unprefixed");
            assert_eq!(r.status, 404, "pages live below the route prefix only");
        }
    }
}
