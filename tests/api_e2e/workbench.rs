//! The coordinator's workbench over HTTP: compare, similar cases, facets and export, on the
//! demo corpus with the demo keys.

use std::collections::BTreeSet;
use std::io::Read;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{
    DOC_000, DOC_001, DOC_003, HYOGO_KEY, PUBLIC_KEY, WAKAYAMA_QUESTION, assert_error, get,
    post_json, set, url,
};

const PREFECTURES: [&str; 5] = ["北海道", "山梨県", "京都府", "宮崎県", "沖縄県"];

fn groups(reply: &Value) -> &Vec<Value> {
    reply["groups"].as_array().expect("groups")
}

fn labels(reply: &Value) -> Vec<String> {
    groups(reply)
        .iter()
        .map(|group| group["label"].as_str().expect("a label").to_owned())
        .collect()
}

#[tokio::test]
async fn a_section_compare_answers_each_prefecture_from_its_own_section() {
    let reply = post_json(
        "/v1/compare",
        Some(PUBLIC_KEY),
        json!({
            "question": "各道府県が希望する伴走支援の内容は",
            "group_by": "section",
            "filters": {"doc_id": DOC_000},
        }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let found = labels(&reply.body);
    for prefecture in PREFECTURES {
        assert!(
            found.contains(&prefecture.to_owned()),
            "{prefecture} missing from {found:?}"
        );
    }
    for group in groups(&reply.body) {
        let key = group["key"].as_str().expect("a key");
        let citations = group["citations"].as_array().expect("citations");
        if PREFECTURES.contains(&group["label"].as_str().expect("a label")) {
            assert_eq!(group["found"], true, "{group}");
            assert!(!citations.is_empty(), "{group}");
        }
        for citation in citations {
            assert_eq!(citation["doc_id"], DOC_000);
            assert_eq!(
                citation["heading_path"][0], key,
                "a group cites only its own section: {citation}"
            );
        }
    }
}

#[tokio::test]
async fn an_owner_compare_shows_only_organisations_the_caller_may_read() {
    let reply = post_json(
        "/v1/compare",
        Some(HYOGO_KEY),
        json!({"question": WAKAYAMA_QUESTION, "group_by": "owner"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let keys: BTreeSet<String> = groups(&reply.body)
        .iter()
        .map(|group| group["key"].as_str().expect("a key").to_owned())
        .collect();
    assert_eq!(keys, set(&["pref-hyogo", "soumu"]));
    assert_eq!(labels(&reply.body), ["兵庫県", "総務省"]);
    for group in groups(&reply.body) {
        for citation in group["citations"].as_array().expect("citations") {
            assert_eq!(citation["owner"], group["key"], "{citation}");
            assert_ne!(citation["doc_id"], DOC_003);
        }
    }

    // Naming an unreadable organisation gives an empty group, exactly like an unknown one.
    let named = |groups: Value| {
        post_json(
            "/v1/compare",
            Some(HYOGO_KEY),
            json!({"question": WAKAYAMA_QUESTION, "group_by": "owner", "groups": groups}),
        )
    };
    let unreadable = named(json!(["pref-wakayama"])).await;
    let unknown = named(json!(["pref-nowhere"])).await;
    assert_eq!(unreadable.status, StatusCode::OK, "{}", unreadable.body);
    for reply in [&unreadable, &unknown] {
        let group = &groups(&reply.body)[0];
        assert_eq!(group["found"], false, "{group}");
        assert_eq!(group["citations"], json!([]), "{group}");
    }
    let strip = |mut body: Value| {
        body["took_ms"] = Value::Null;
        body["groups"][0]["key"] = Value::Null;
        body["groups"][0]["label"] = Value::Null;
        body
    };
    assert_eq!(strip(unreadable.body), strip(unknown.body));
}

#[tokio::test]
async fn a_document_compare_has_one_group_per_readable_document() {
    let reply = post_json(
        "/v1/compare",
        Some(PUBLIC_KEY),
        json!({"question": "DX推進の体制", "group_by": "document", "per_group": 2}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let keys: BTreeSet<String> = groups(&reply.body)
        .iter()
        .map(|group| group["key"].as_str().expect("a key").to_owned())
        .collect();
    assert_eq!(keys, set(&[DOC_000, DOC_001]));
    for group in groups(&reply.body) {
        let citations = group["citations"].as_array().expect("citations");
        assert!(citations.len() <= 2, "{group}");
        assert!(
            citations.iter().all(|c| c["doc_id"] == group["key"]),
            "{group}"
        );
    }
}

#[tokio::test]
async fn compare_requests_are_checked() {
    let compare = |body: Value| post_json("/v1/compare", Some(PUBLIC_KEY), body);
    let reply = compare(json!({"question": "体制", "group_by": "prefecture"})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let reply = compare(json!({"question": "", "group_by": "owner"})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let reply = compare(json!({"question": "体制", "group_by": "owner", "groups": []})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let reply = compare(json!({"question": "体制", "group_by": "owner", "per_group": 0})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let reply = post_json(
        "/v1/compare",
        None,
        json!({"question": "体制", "group_by": "owner"}),
    )
    .await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
    // The demo has no language model: a synthesis cannot be written.
    let reply = compare(json!({"question": "体制", "group_by": "owner", "synthesis": true})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("言語モデル"), "{message}");
    let reply = compare(json!({"question": "体制", "group_by": "owner", "synthesis": false})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body.get("synthesis").is_none(), "{}", reply.body);
}

/// A section comparison reads its document's sections once: a second request, answered from
/// the cached sections, has the same groups.
#[tokio::test]
async fn a_repeated_section_compare_has_the_same_groups() {
    let body = json!({
        "question": "対象となる市町村はどこか",
        "group_by": "section",
        "filters": {"doc_id": DOC_000},
    });
    let first = post_json("/v1/compare", Some(PUBLIC_KEY), body.clone()).await;
    let second = post_json("/v1/compare", Some(PUBLIC_KEY), body).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let keys = |reply: &Value| -> Vec<String> {
        groups(reply)
            .iter()
            .map(|group| group["key"].as_str().expect("a key").to_owned())
            .collect()
    };
    assert_eq!(keys(&first.body), keys(&second.body));
    assert_eq!(
        keys(&first.body).len(),
        6,
        "five prefectures and the cover table"
    );
}

#[tokio::test]
async fn facets_count_only_what_the_caller_may_read() {
    let public = get("/v1/facets", Some(PUBLIC_KEY)).await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.body);
    let documents = get("/v1/documents", Some(PUBLIC_KEY)).await;
    let listed = documents.body["documents"].as_array().expect("documents");
    let ids: BTreeSet<String> = listed
        .iter()
        .map(|d| d["doc_id"].as_str().expect("an id").to_owned())
        .collect();
    assert_eq!(
        ids,
        set(&[DOC_000, DOC_001]),
        "the public key reads only public documents"
    );
    let passages: u64 = listed
        .iter()
        .map(|d| d["chunk_count"].as_u64().expect("a count"))
        .sum();
    assert_eq!(public.body["documents"], 2);
    assert_eq!(public.body["passages"], passages);
    let owners = public.body["owners"].as_array().expect("owners");
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0]["key"], "soumu");
    assert_eq!(owners[0]["label"], "総務省");
    assert_eq!(owners[0]["passages"], passages);
    let years: u64 = public.body["years"]
        .as_array()
        .expect("years")
        .iter()
        .map(|year| year["documents"].as_u64().expect("a count"))
        .sum();
    assert_eq!(
        years, 2,
        "every document is counted under one year (or none)"
    );

    // Other tests upload as 兵庫県 at the same time, so its own documents are counted at
    // least, and the others exactly.
    let hyogo = get("/v1/facets", Some(HYOGO_KEY)).await;
    let owners = hyogo.body["owners"].as_array().expect("owners");
    let documents_of = |key: &str| {
        owners
            .iter()
            .find(|owner| owner["key"] == key)
            .map(|owner| owner["documents"].as_u64().expect("a count"))
    };
    let owner_keys: Vec<&str> = owners
        .iter()
        .map(|owner| owner["key"].as_str().expect("a key"))
        .collect();
    assert_eq!(
        owner_keys,
        ["pref-hyogo", "soumu"],
        "兵庫県 may not read 和歌山県's 003: {}",
        hyogo.body
    );
    assert_eq!(
        documents_of("soumu"),
        Some(2),
        "000 and 001: {}",
        hyogo.body
    );
    let own = documents_of("pref-hyogo").expect("兵庫県's documents");
    assert!(own >= 2, "002 and 004 at least: {}", hyogo.body);
    assert_eq!(hyogo.body["documents"], own + 2, "{}", hyogo.body);
}

#[tokio::test]
async fn similar_cases_leave_out_the_callers_own_documents_when_asked() {
    let draft = "市町のDX推進を支援するため、県が専門人材を派遣し、市町職員向けの研修や相談対応を行う。共同調達やシステム標準化にも取り組む。";
    let similar = |exclude: bool| {
        post_json(
            "/v1/similar",
            Some(HYOGO_KEY),
            json!({"text": draft, "top_k": 6, "exclude_owner": exclude}),
        )
    };
    let all = similar(false).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    let passages = all.body["passages"].as_array().expect("passages");
    assert!(!passages.is_empty());
    assert!(
        passages.iter().any(|p| p["owner"] == "pref-hyogo"),
        "兵庫県's own plan is like the draft: {passages:?}"
    );
    let mut per_document = std::collections::BTreeMap::<String, usize>::new();
    for passage in passages {
        assert_ne!(passage["doc_id"], DOC_003, "not readable by 兵庫県");
        *per_document
            .entry(passage["doc_id"].as_str().expect("an id").to_owned())
            .or_default() += 1;
        let terms = passage["matched_terms"].as_array().expect("terms");
        assert!(!terms.is_empty(), "{passage}");
        for term in terms {
            let term = term.as_str().expect("a term");
            assert!(draft.contains(term) && passage["text"].as_str().expect("text").contains(term));
        }
    }
    assert!(
        per_document.values().all(|&count| count <= 2),
        "{per_document:?}"
    );

    let others = similar(true).await;
    let passages = others.body["passages"].as_array().expect("passages");
    assert!(!passages.is_empty());
    assert!(
        passages.iter().all(|p| p["owner"] != "pref-hyogo"),
        "{passages:?}"
    );

    let long = post_json(
        "/v1/similar",
        Some(HYOGO_KEY),
        json!({"text": "あ".repeat(5_001)}),
    )
    .await;
    assert_error(&long, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn the_workbench_options_are_documented() {
    let openapi = get("/openapi.json", None).await;
    assert_eq!(openapi.status, StatusCode::OK);
    let schemas = &openapi.body["components"]["schemas"];
    let properties = |schema: &str| schemas[schema]["properties"].clone();
    assert!(
        properties("CompareRequest")["synthesis"].is_object(),
        "{schemas}"
    );
    assert!(properties("CompareResponse")["synthesis"].is_object());
    assert!(schemas["CompareSynthesis"].is_object());
    assert!(schemas["SynthesisCitation"].is_object());
    assert!(properties("SimilarRequest")["group_by"].is_object());
    assert!(properties("SimilarRequest")["per_group"].is_object());
    assert!(properties("SimilarResponse")["groups"].is_object());
    assert_eq!(
        schemas["SimilarGroupBy"]["enum"],
        json!(["owner", "document"])
    );
}

#[tokio::test]
async fn similar_cases_grouped_by_owner_or_document() {
    let draft = "市町のDX推進を支援するため、県が専門人材を派遣し、市町職員向けの研修や相談対応を行う。共同調達やシステム標準化にも取り組む。";
    let similar = |body: Value| post_json("/v1/similar", Some(HYOGO_KEY), body);
    let by_owner = similar(json!({"text": draft, "group_by": "owner", "top_k": 5})).await;
    assert_eq!(by_owner.status, StatusCode::OK, "{}", by_owner.body);
    assert_eq!(by_owner.body["passages"], json!([]), "{}", by_owner.body);
    let owners = groups(&by_owner.body);
    let keys: BTreeSet<String> = owners
        .iter()
        .map(|group| group["key"].as_str().expect("a key").to_owned())
        .collect();
    assert_eq!(
        keys,
        set(&["pref-hyogo", "soumu"]),
        "兵庫県 reads no 和歌山県 document"
    );
    assert!(labels(&by_owner.body).contains(&"総務省".to_owned()));
    let mut best = f64::MAX;
    for group in owners {
        let passages = group["passages"].as_array().expect("passages");
        assert!(!passages.is_empty() && passages.len() <= 3, "{group}");
        assert!(
            passages.iter().all(|p| p["owner"] == group["key"]),
            "{group}"
        );
        assert!(
            passages
                .iter()
                .all(|p| !p["matched_terms"].as_array().expect("terms").is_empty())
        );
        let top = passages[0]["score"].as_f64().expect("a score");
        assert!(
            top <= best,
            "groups come in the order of their best passage"
        );
        best = top;
    }

    let by_document = similar(json!({
        "text": draft, "group_by": "document", "top_k": 2, "per_group": 1, "exclude_owner": true,
    }))
    .await;
    assert_eq!(by_document.status, StatusCode::OK, "{}", by_document.body);
    let documents = groups(&by_document.body);
    assert!(
        !documents.is_empty() && documents.len() <= 2,
        "{}",
        by_document.body
    );
    for group in documents {
        let passages = group["passages"].as_array().expect("passages");
        assert_eq!(passages.len(), 1, "{group}");
        assert_eq!(passages[0]["doc_id"], group["key"]);
        assert_eq!(passages[0]["title"], group["label"]);
        assert_ne!(passages[0]["owner"], "pref-hyogo", "{group}");
    }

    for bad in [
        json!({"text": draft, "group_by": "kind"}),
        json!({"text": draft, "group_by": "owner", "per_group": 0}),
        json!({"text": draft, "group_by": "owner", "per_group": 6}),
        json!({"text": draft, "per_group": 2}),
    ] {
        assert_error(
            &similar(bad).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        );
    }
}

/// A comparison as Markdown and DOCX: the files hold the result's question, each group's
/// answer and the references its markers point to.
#[tokio::test]
async fn exports_hold_the_references_of_the_result() {
    let compared = post_json(
        "/v1/compare",
        Some(PUBLIC_KEY),
        json!({
            "question": "伴走支援を受け入れる体制は",
            "group_by": "section",
            "filters": {"doc_id": DOC_000},
        }),
    )
    .await;
    assert_eq!(compared.status, StatusCode::OK, "{}", compared.body);
    let result = compared.body;
    let marker = regex::Regex::new(r"\[\d+\]").expect("regex");
    let mut markers = 0;
    let markdown = export("md", &result).await;
    assert_eq!(markdown.0, "text/markdown; charset=utf-8");
    let markdown = String::from_utf8(markdown.1).expect("UTF-8");
    assert!(
        markdown.starts_with("# 伴走支援を受け入れる体制は\n"),
        "{markdown}"
    );
    for group in groups(&result) {
        let label = group["label"].as_str().expect("label");
        assert!(
            markdown.contains(&format!("\n## {label}\n")),
            "{label} in {markdown}"
        );
        for citation in group["citations"].as_array().expect("citations") {
            let reference = format!(
                "[{}] {}（総務省）",
                citation["n"],
                citation["title"].as_str().expect("title")
            );
            assert!(markdown.contains(&reference), "{reference} in {markdown}");
        }
        if group["found"] == true {
            markers += marker
                .find_iter(group["answer"].as_str().expect("answer"))
                .count();
        }
    }
    assert!(markers > 0, "{result}");

    let (content_type, docx) = export("docx", &result).await;
    assert_eq!(
        content_type,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    let notes = footnote_texts(&docx);
    assert_eq!(
        notes.len(),
        markers,
        "one footnote per citation marker: {notes:?}"
    );
    let titles: Vec<&str> = groups(&result)
        .iter()
        .flat_map(|group| group["citations"].as_array().expect("citations"))
        .map(|citation| citation["title"].as_str().expect("title"))
        .collect();
    for note in &notes {
        assert!(note.starts_with('['), "{note}");
        assert!(titles.iter().any(|title| note.contains(title)), "{note}");
    }

    let neither = post_json(
        "/v1/export?format=md",
        Some(PUBLIC_KEY),
        json!({"question": "q"}),
    )
    .await;
    assert_error(&neither, StatusCode::BAD_REQUEST, "invalid_request");
    let unknown = post_json("/v1/export?format=pdf", Some(PUBLIC_KEY), result.clone()).await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "invalid_request");
    let anonymous = post_json("/v1/export?format=md", None, result).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized");
}

/// The exported DOCX opens in LibreOffice and reads as the answer.
#[tokio::test]
#[ignore = "needs LibreOffice (soffice on PATH: apt-get install libreoffice-writer-nogui)"]
async fn exported_docx_converts_in_libreoffice() {
    let asked = post_json(
        "/v1/ask",
        Some(PUBLIC_KEY),
        json!({"question": "北海道の伴走支援の受入体制は"}),
    )
    .await;
    let mut result = asked.body;
    result["question"] = json!("北海道の伴走支援の受入体制は");
    let (_, docx) = export("docx", &result).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("answer.docx");
    std::fs::write(&path, docx).expect("write");
    let status = std::process::Command::new("soffice")
        .args([
            "--headless",
            "--convert-to",
            "txt:Text (encoded):UTF8",
            "--outdir",
        ])
        .arg(dir.path())
        .arg(&path)
        .status()
        .expect("soffice runs");
    assert!(status.success());
    let text = std::fs::read_to_string(dir.path().join("answer.txt")).expect("converted text");
    assert!(text.contains("北海道の伴走支援の受入体制は"), "{text}");
    let first_line = result["answer"]
        .as_str()
        .expect("answer")
        .lines()
        .next()
        .expect("a line");
    let without_marker = first_line.split('[').next().expect("text");
    assert!(text.contains(without_marker.trim()), "{text}");
}

async fn export(format: &str, result: &Value) -> (String, Vec<u8>) {
    let response = reqwest::Client::new()
        .post(url(&format!("/v1/export?format={format}")))
        .bearer_auth(PUBLIC_KEY)
        .json(result)
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .expect("ASCII")
        .to_owned();
    (
        content_type,
        response.bytes().await.expect("a body").to_vec(),
    )
}

/// The text of each footnote of a DOCX package (separators, which have no text, left out).
fn footnote_texts(docx: &[u8]) -> Vec<String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(docx)).expect("a DOCX is a zip");
    let mut xml = String::new();
    archive
        .by_name("word/footnotes.xml")
        .expect("footnotes")
        .read_to_string(&mut xml)
        .expect("UTF-8");
    let note = regex::Regex::new(r"(?s)<w:footnote [^>]*>(.*?)</w:footnote>").expect("regex");
    let text = regex::Regex::new(r"<w:t[^>]*>([^<]*)</w:t>").expect("regex");
    note.captures_iter(&xml)
        .map(|found| {
            text.captures_iter(&found[1])
                .map(|t| t[1].to_owned())
                .collect::<String>()
        })
        .filter(|note| !note.is_empty())
        .collect()
}
