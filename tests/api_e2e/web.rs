//! The web app in a real browser: Debian's Chromium driven by its ChromeDriver over WebDriver,
//! against the shared test server (the demo corpus and keys). Each step saves a screenshot
//! under `target/web-screenshots/`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them): without them the test fails and says so.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::{DOC_000, HYOGO_KEY, PUBLIC_KEY, WAKAYAMA_KEY, WAKAYAMA_QUESTION, base_url};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(30);

struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // ChromeDriver and the browser it started share a process group of their own: end them
        // together, so that no browser outlives the test (even one that failed).
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A browser whose viewport is `width` × `height` CSS pixels (emulated, since a headless window
/// cannot be narrower than 500 px).
async fn browser(width: u32, height: u32) -> Browser {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: install Debian's chromium and chromium-driver (bash .ci/run does)"
        );
    }
    let port = free_port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--window-size={},{}", width.max(500), height),
                format!("--user-data-dir={}", profile.path().display()),
            ],
            "mobileEmulation": {
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0 }
            },
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => break client,
            Err(error) if started.elapsed() < WAIT => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("chromedriver did not start a browser: {error}"),
        }
    };
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots");
    std::fs::create_dir_all(&shots).expect("the screenshot directory");
    Browser {
        client,
        driver,
        _profile: profile,
        shots,
    }
}

impl Browser {
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("save the screenshot");
    }

    async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", base_url()))
            .await
            .expect("open the page");
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no element {css}: {error}"))
    }

    async fn script(&self, code: &str) -> Value {
        self.client
            .execute(code, vec![])
            .await
            .unwrap_or_else(|error| panic!("script {code}: {error}"))
    }

    /// Waits until the script returns true.
    async fn until(&self, what: &str, code: &str) {
        let started = Instant::now();
        loop {
            if self.script(code).await == Value::Bool(true) {
                return;
            }
            if started.elapsed() > WAIT {
                self.shot(&format!("timeout-{}", what.replace(' ', "-")))
                    .await;
                panic!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .expect("the element's text")
    }

    async fn visible(&self, css: &str) -> bool {
        self.script(&format!(
            "const e = document.querySelector({css:?}); return !!e && !e.hidden && e.offsetParent !== null;"
        ))
        .await
            == Value::Bool(true)
    }

    async fn sign_in(&self, key: &str) {
        self.open("/").await;
        let input = self.find("#api-key").await;
        self.until(
            "the sign-in form",
            "return !document.getElementById('signin-view').hidden;",
        )
        .await;
        input.send_keys(key).await.expect("type the key");
        self.find("#signin-submit")
            .await
            .click()
            .await
            .expect("sign in");
    }

    async fn signed_in_as(&self, key: &str, org_name: &str) {
        self.sign_in(key).await;
        self.until(
            "the app view",
            "return !document.getElementById('app-view').hidden;",
        )
        .await;
        assert_eq!(self.text("#session-org").await, org_name);
    }

    async fn sign_out(&self) {
        self.find("#signout").await.click().await.expect("sign out");
        self.until(
            "the sign-in view",
            "return !document.getElementById('signin-view').hidden;",
        )
        .await;
    }

    async fn ask(&self, question: &str) {
        self.find("#nav-ask")
            .await
            .click()
            .await
            .expect("the ask view");
        let input = self.find("#question").await;
        input.clear().await.expect("clear");
        input.send_keys(question).await.expect("type the question");
        // Enter sends (Shift+Enter would add a line).
        input.send_keys("\u{E007}").await.expect("press Enter");
        self.until(
            "the answer",
            "const s = document.getElementById('answer').dataset.state; return s === 'done' || s === 'error';",
        )
        .await;
        assert_eq!(
            self.script("return document.getElementById('answer').dataset.state;")
                .await,
            "done"
        );
    }

    /// The visible text of every element matching `css`.
    async fn texts(&self, css: &str) -> Vec<String> {
        let value = self
            .script(&format!(
                "return Array.from(document.querySelectorAll({css:?})).map(e => e.textContent);"
            ))
            .await;
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }
}

const WAKAYAMA_REPORT: &str = "和歌山県・市町村行政DX推進による行政経営変革支援業務 実績報告書";

#[tokio::test(flavor = "multi_thread")]
async fn the_web_app_in_a_real_browser() {
    base_url();
    let browser = browser(1280, 900).await;

    // The page: every form control has a label, nothing loads from elsewhere, and it paints
    // within a second from a local service.
    browser.open("/").await;
    browser
        .until("the first paint", "return performance.getEntriesByType('paint').some(e => e.name === 'first-contentful-paint');")
        .await;
    let first_paint = browser
        .script("return performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint').startTime;")
        .await
        .as_f64()
        .unwrap_or(f64::MAX);
    assert!(first_paint < 1000.0, "first paint after {first_paint} ms");
    let unlabelled = browser
        .script(
            "return Array.from(document.querySelectorAll('input, textarea, select'))
               .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
               .map(e => e.id || e.name);",
        )
        .await;
    assert_eq!(unlabelled, json!([]), "controls without a label");
    let foreign = browser
        .script("return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin));")
        .await;
    assert_eq!(foreign, json!([]), "resources from elsewhere");

    // A wrong key: a Japanese error, no session.
    browser.sign_in("not-a-key").await;
    browser
        .until(
            "the sign-in error",
            "return document.getElementById('signin-error').textContent.length > 0;",
        )
        .await;
    assert!(
        browser
            .text("#signin-error")
            .await
            .contains("APIキーが正しくありません"),
        "{}",
        browser.text("#signin-error").await
    );
    browser.shot("01-wrong-key").await;
    let stored = browser
        .script("return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie;")
        .await;
    assert!(!stored.as_str().unwrap_or_default().contains("not-a-key"));

    // Each demo key signs in and shows its organisation and role.
    for (key, org_name) in [
        (PUBLIC_KEY, "一般利用者"),
        (HYOGO_KEY, "兵庫県"),
        (WAKAYAMA_KEY, "和歌山県"),
    ] {
        browser.signed_in_as(key, org_name).await;
        assert!(!browser.text("#session-role").await.is_empty());
        let stored = browser
            .script("return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie;")
            .await;
        assert!(
            !stored.as_str().unwrap_or_default().contains(key),
            "the key is stored in the browser: {stored}"
        );
        browser.sign_out().await;
    }

    // 和歌山県 asks; [1] opens a passage of its report with the supporting sentence marked.
    browser.signed_in_as(WAKAYAMA_KEY, "和歌山県").await;
    browser.ask(WAKAYAMA_QUESTION).await;
    browser.shot("02-wakayama-answer").await;
    let citations = browser.texts("#citations li").await;
    assert!(!citations.is_empty(), "no citations listed");
    assert!(
        citations[0].contains(WAKAYAMA_REPORT)
            || citations.iter().any(|c| c.contains("実績報告書")),
        "{citations:?}"
    );
    browser
        .find("#answer-text .cite[data-n='1']")
        .await
        .click()
        .await
        .expect("open [1]");
    browser
        .until(
            "the viewer",
            "return !document.getElementById('viewer').hidden;",
        )
        .await;
    assert!(browser.text("#viewer-title").await.contains("実績報告書"));
    assert_eq!(browser.text("#viewer-owner").await, "和歌山県");
    let marks = browser.texts("#viewer-text mark").await;
    assert!(
        !marks.is_empty(),
        "the supporting sentence is not highlighted"
    );
    browser.shot("03-citation-viewer").await;
    browser
        .find("#viewer-context")
        .await
        .click()
        .await
        .expect("前後を読む");
    browser
        .until(
            "the neighbours",
            "return document.querySelectorAll('#viewer-neighbours > *').length > 1;",
        )
        .await;
    browser.shot("04-neighbours").await;
    browser
        .find("#viewer-full")
        .await
        .click()
        .await
        .expect("資料全体");
    browser
        .until(
            "the whole document",
            "return !!document.querySelector('#viewer-document .current');",
        )
        .await;
    browser.shot("05-whole-document").await;
    browser
        .find("#viewer-close")
        .await
        .click()
        .await
        .expect("close");

    // 👎 with a comment is stored for 和歌山県's admins.
    browser
        .find("#feedback-down")
        .await
        .click()
        .await
        .expect("👎");
    browser
        .find("#feedback-comment")
        .await
        .send_keys("見出しの行が回答に入っています")
        .await
        .expect("comment");
    browser
        .find("#feedback-submit")
        .await
        .click()
        .await
        .expect("send");
    browser
        .until(
            "the feedback thanks",
            "return document.getElementById('feedback-status').textContent.includes('ありがとう');",
        )
        .await;
    browser.shot("05b-feedback").await;
    let listed = reqwest::Client::new()
        .get(format!("{}/v1/feedback", base_url()))
        .bearer_auth(super::WAKAYAMA_ADMIN_KEY)
        .send()
        .await
        .expect("the server answers")
        .json::<Value>()
        .await
        .expect("JSON");
    assert!(
        listed["feedback"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|entry| {
                entry["comment"] == "見出しの行が回答に入っています" && entry["rating"] == "down"
            }),
        "{listed}"
    );
    browser.sign_out().await;

    // 兵庫県 asks the same: nothing of 和歌山県's report, as an answer or as related passages.
    browser.signed_in_as(HYOGO_KEY, "兵庫県").await;
    browser.ask(WAKAYAMA_QUESTION).await;
    browser.shot("06-hyogo-same-question").await;
    let shown = browser
        .script("return document.getElementById('answer').textContent;")
        .await;
    assert!(
        !shown.as_str().unwrap_or_default().contains("実績報告書"),
        "兵庫県 sees 和歌山県's report: {shown}"
    );
    browser.sign_out().await;

    // The public key lists public documents only.
    browser.signed_in_as(PUBLIC_KEY, "一般利用者").await;
    browser
        .find("#nav-documents")
        .await
        .click()
        .await
        .expect("documents");
    browser
        .until(
            "the document list",
            "return document.querySelectorAll('#documents-table tbody tr').length > 0;",
        )
        .await;
    let listed: Vec<String> = browser
        .script("return Array.from(document.querySelectorAll('#documents-table tbody tr')).map(r => r.dataset.docId);")
        .await
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        listed,
        vec![super::DOC_000.to_owned(), super::DOC_001.to_owned()]
    );
    assert!(
        !browser.visible("#upload-form").await,
        "a reader sees the upload form"
    );
    browser.shot("07-public-documents").await;
    browser.sign_out().await;

    // A 兵庫県 editor uploads a Markdown file, finds it, gets it cited, then deletes it.
    let files = tempfile::tempdir().expect("tempdir");
    let minutes = files.path().join("web-kaigi.md");
    std::fs::write(
        &minutes,
        "# 第3回ブラウザ試験会議\n\nブラウザ試験会議では、窓口の電子整理券を令和8年度に全庁へ広げることを決めた。\n",
    )
    .expect("write the upload");
    let oversized = files.path().join("web-too-big.md");
    std::fs::write(&oversized, "あ".repeat(super::UPLOAD_LIMIT / 3 + 10)).expect("write");
    let hostile = files.path().join("web-xss.md");
    std::fs::write(
        &hostile,
        "# 危険な記述の試験\n\n試験用の記述 <script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\"> を表示するだけの資料です。\n",
    )
    .expect("write");
    browser.signed_in_as(HYOGO_KEY, "兵庫県").await;
    browser
        .find("#nav-documents")
        .await
        .click()
        .await
        .expect("documents");
    let picker = browser.find("#upload-files").await;
    let paths = [&minutes, &oversized, &hostile]
        .map(|path| path.display().to_string())
        .join("\n");
    picker.send_keys(&paths).await.expect("choose files");
    browser
        .find("#upload-submit")
        .await
        .click()
        .await
        .expect("upload");
    browser
        .until("three upload results", "return document.querySelectorAll('#upload-results li.ok, #upload-results li.error').length === 3;")
        .await;
    browser.shot("08-uploads").await;
    let ok = browser.texts("#upload-results li.ok").await;
    let failed = browser.texts("#upload-results li.error").await;
    assert_eq!(ok.len(), 2, "{ok:?} / {failed:?}");
    assert!(
        failed.len() == 1
            && failed[0].contains("web-too-big.md")
            && failed[0].contains("大きすぎます"),
        "{failed:?}"
    );
    browser
        .until("the upload in the list", "return !!document.querySelector(\"#documents-table tr[data-doc-id='uploads/pref-hyogo/web-kaigi.md']\");")
        .await;

    browser
        .ask("ブラウザ試験会議で電子整理券について何を決めましたか")
        .await;
    let cited = browser.texts("#citations li").await;
    assert!(
        cited.iter().any(|c| c.contains("ブラウザ試験会議")),
        "the upload is not cited: {cited:?}"
    );
    browser.shot("09-upload-cited").await;

    // The hostile document renders as text: its tags show, nothing runs.
    browser
        .find("#nav-search")
        .await
        .click()
        .await
        .expect("search");
    let query = browser.find("#search-query").await;
    query.send_keys("危険な記述の試験").await.expect("type");
    browser
        .find("#search-submit")
        .await
        .click()
        .await
        .expect("search");
    browser
        .until(
            "search results",
            "return document.querySelectorAll('#search-results li').length > 0;",
        )
        .await;
    let results = browser.texts("#search-results li").await;
    assert!(
        results
            .iter()
            .any(|r| r.contains("<script>") && r.contains("onerror")),
        "{results:?}"
    );
    assert_eq!(
        browser.script("return window.__xss === undefined;").await,
        true
    );
    assert_eq!(
        browser.script("return document.querySelectorAll('#search-results img, #search-results script').length;").await,
        0
    );
    browser.shot("10-xss-inert").await;

    browser
        .find("#nav-documents")
        .await
        .click()
        .await
        .expect("documents");
    for doc_id in [
        "uploads/pref-hyogo/web-kaigi.md",
        "uploads/pref-hyogo/web-xss.md",
    ] {
        // The table is drawn again when the document list arrives: a button found just before
        // that is gone (stale), so it is found again.
        let selector = format!("#documents-table tr[data-doc-id='{doc_id}'] .delete-doc");
        let mut attempts = 0;
        loop {
            match browser.find(&selector).await.click().await {
                Ok(_) => break,
                Err(error) if attempts < 5 => {
                    attempts += 1;
                    eprintln!("delete button not clickable yet ({error}); finding it again");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(error) => panic!("delete: {error:?}"),
            }
        }
        browser
            .find("#confirm-yes")
            .await
            .click()
            .await
            .expect("confirm");
        browser
            .until(
                "the document gone",
                &format!("return !document.querySelector(\"#documents-table tr[data-doc-id='{doc_id}']\");"),
            )
            .await;
    }
    browser.shot("11-deleted").await;

    // A question in the URL runs at once.
    browser
        .open(&format!("/?q={}", urlencode(WAKAYAMA_QUESTION)))
        .await;
    browser
        .until(
            "the question from the URL",
            "return document.getElementById('answer').dataset.state === 'done';",
        )
        .await;
    assert_eq!(
        browser
            .script("return document.getElementById('question').value;")
            .await,
        WAKAYAMA_QUESTION
    );
    browser.shot("12-question-in-url").await;
    browser.sign_out().await;

    // At phone width the ask page has no horizontal scroll.
    let phone = browser_at_phone_width().await;
    phone.signed_in_as(WAKAYAMA_KEY, "和歌山県").await;
    phone.ask(WAKAYAMA_QUESTION).await;
    assert_eq!(
        phone
            .script("return document.documentElement.scrollWidth <= window.innerWidth;")
            .await,
        true
    );
    phone.shot("13-phone-width").await;
}

/// The coordinator's workbench: a section comparison as a table whose citations open the
/// viewer, exports, similar cases for a draft, and facet counts on the search filters.
#[tokio::test(flavor = "multi_thread")]
async fn the_workbench_in_a_real_browser() {
    base_url();
    let browser = browser(1280, 900).await;
    browser.signed_in_as(PUBLIC_KEY, "一般利用者").await;

    browser
        .find("#nav-compare")
        .await
        .click()
        .await
        .expect("the compare view");
    browser
        .until(
            "the documents to compare",
            &format!(
                "return !!document.querySelector(\"#compare-doc option[value='{DOC_000}']\");"
            ),
        )
        .await;
    browser
        .script(&format!(
            "const g = document.getElementById('compare-group-by'); g.value = 'section'; g.dispatchEvent(new Event('change'));
             document.getElementById('compare-doc').value = '{DOC_000}';"
        ))
        .await;
    assert!(browser.visible("#compare-doc").await);
    browser
        .find("#compare-question")
        .await
        .send_keys("各道府県が希望する伴走支援の内容は")
        .await
        .expect("type the question");
    browser
        .find("#compare-submit")
        .await
        .click()
        .await
        .expect("compare");
    browser
        .until(
            "the comparison",
            "return document.querySelectorAll('#compare-table tbody tr').length >= 5;",
        )
        .await;
    let labels = browser.texts("#compare-table tbody th.group-label").await;
    for prefecture in ["北海道", "山梨県", "京都府", "宮崎県", "沖縄県"] {
        assert!(
            labels.iter().any(|l| l == prefecture),
            "{prefecture} in {labels:?}"
        );
    }
    browser.shot("20-compare-sections").await;

    // A group's citation opens the viewer on that group's passage.
    let first_citation = "#compare-table tbody tr.found .group-citations .cite-open";
    let cited_heading = browser
        .script(&format!(
            "return document.querySelector({first_citation:?}).closest('tr').dataset.key;"
        ))
        .await;
    browser
        .find(first_citation)
        .await
        .click()
        .await
        .expect("open the citation");
    browser
        .until(
            "the viewer",
            "return document.getElementById('viewer').open;",
        )
        .await;
    let heading = browser.text("#viewer-heading").await;
    assert!(
        heading.starts_with(cited_heading.as_str().expect("a key")),
        "{heading} under {cited_heading}"
    );
    browser.shot("21-compare-citation").await;
    browser
        .find("#viewer-close")
        .await
        .click()
        .await
        .expect("close");

    for (button, saved) in [
        ("#compare-export-md", "Markdownファイルを保存しました"),
        ("#compare-export-docx", "Wordファイルを保存しました"),
    ] {
        browser.find(button).await.click().await.expect("export");
        browser
            .until(
                "the export",
                &format!("return document.getElementById('compare-export-status').textContent.startsWith({saved:?});"),
            )
            .await;
    }

    // A synthesis needs a language model, which the demo has not: the server says so.
    browser
        .find("#compare-synthesis")
        .await
        .click()
        .await
        .expect("ask for a synthesis");
    browser
        .find("#compare-submit")
        .await
        .click()
        .await
        .expect("compare");
    browser
        .until(
            "the refusal",
            "const e = document.getElementById('compare-error'); return !e.hidden && e.textContent.includes('言語モデル');",
        )
        .await;
    assert!(!browser.visible("#compare-synthesis-box").await);
    browser.shot("23-compare-synthesis-needs-a-model").await;

    // With a model the response carries a synthesis; the page is given one (built from two
    // groups' citations, as a server with a model would send) to show above the table.
    browser
        .script(
            "const original = window.fetch;
             window.fetch = async (path, options) => {
               const response = await original(path, options);
               if (path !== '/v1/compare' || !response.ok) return response;
               const data = await response.json();
               const cited = data.groups.filter((g) => g.found && g.citations.length > 0).slice(0, 2);
               data.synthesis = {
                 found: true,
                 text: cited.map((g, i) => g.label + 'では「' + g.citations[0].text.slice(0, 20) + '」[' + (i + 1) + ']').join('。') + '。',
                 citations: cited.map((g, i) => Object.assign({}, g.citations[0], { n: i + 1, group: g.key })),
                 warnings: ['資料で根拠を確認できなかった1文をまとめから除きました。'],
               };
               window.fetch = original;
               return new Response(JSON.stringify(data), { status: 200, headers: { 'Content-Type': 'application/json' } });
             };
             document.getElementById('compare-synthesis').checked = false;",
        )
        .await;
    browser
        .find("#compare-submit")
        .await
        .click()
        .await
        .expect("compare");
    browser
        .until(
            "the synthesis",
            "return !document.getElementById('compare-synthesis-box').hidden && document.querySelectorAll('#compare-synthesis-text .cite').length === 2;",
        )
        .await;
    assert!(!browser.visible("#compare-error").await);
    let cites = browser.texts("#compare-synthesis-cites .cite-meta").await;
    assert_eq!(cites.len(), 2, "{cites:?}");
    browser.shot("24-compare-synthesis").await;
    let cited_group = browser
        .script("return document.querySelector('#compare-synthesis-cites .cite-meta').textContent.split('・')[0];")
        .await;
    browser
        .find("#compare-synthesis-text .cite")
        .await
        .click()
        .await
        .expect("open the synthesis's first citation");
    browser
        .until(
            "the viewer",
            "return document.getElementById('viewer').open;",
        )
        .await;
    let heading = browser.text("#viewer-heading").await;
    assert!(
        heading.contains(cited_group.as_str().expect("a group label")),
        "{heading} from {cited_group}"
    );
    browser
        .find("#viewer-close")
        .await
        .click()
        .await
        .expect("close");

    // Similar cases: passages like a draft, with the terms they share.
    browser
        .find("#nav-similar")
        .await
        .click()
        .await
        .expect("the similar view");
    browser
        .find("#similar-text")
        .await
        .send_keys("市町村職員のデジタル人材育成のため、研修と専門人材の派遣を組み合わせて伴走支援を行う。")
        .await
        .expect("type the draft");
    browser
        .find("#similar-submit")
        .await
        .click()
        .await
        .expect("search");
    browser
        .until(
            "similar cases",
            "return document.querySelectorAll('#similar-results li .term').length > 0;",
        )
        .await;
    browser.shot("22-similar-cases").await;

    // The search filters count what the caller may read.
    browser
        .find("#nav-search")
        .await
        .click()
        .await
        .expect("the search view");
    browser
        .until(
            "facet counts",
            "return Array.from(document.querySelectorAll('#search-owner option')).some(o => o.textContent === '総務省（2件）');",
        )
        .await;
    let owners = browser.texts("#search-owner option").await;
    assert_eq!(
        owners,
        ["すべて", "総務省（2件）"],
        "only what the public key may read"
    );
    browser.shot("23-search-facets").await;
    browser.sign_out().await;

    let phone = browser_at_phone_width().await;
    phone.signed_in_as(HYOGO_KEY, "兵庫県").await;
    phone
        .find("#nav-compare")
        .await
        .click()
        .await
        .expect("the compare view");
    phone
        .find("#compare-question")
        .await
        .send_keys("市町のDX推進体制")
        .await
        .expect("type the question");
    phone
        .find("#compare-submit")
        .await
        .click()
        .await
        .expect("compare");
    phone
        .until(
            "the comparison by organisation",
            "return document.querySelectorAll('#compare-table tbody tr').length === 2;",
        )
        .await;
    assert_eq!(
        phone
            .script("return document.documentElement.scrollWidth <= window.innerWidth;")
            .await,
        true
    );
    phone.shot("24-compare-phone").await;
}

async fn browser_at_phone_width() -> Browser {
    browser(375, 812).await
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The page's own weight (its three files) stays under 300 KB, and the page is served with a
/// strict Content-Security-Policy.
#[tokio::test]
async fn the_page_is_light_and_served_with_a_strict_policy() {
    let client = reqwest::Client::new();
    let mut total = 0;
    for path in ["/", "/app.js", "/app.css"] {
        let response = client
            .get(format!("{}{path}", base_url()))
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{path}");
        let policy = response
            .headers()
            .get("content-security-policy")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
        total += response.bytes().await.expect("a body").len();
    }
    assert!(total < 300 * 1024, "the page weighs {total} bytes");
}
