//! The audit trail, end to end: each test serves the shared service (store and model; nothing
//! is ingested again) on a socket of its own, with a metadata database of its own, so that it
//! sees exactly the records its own calls leave.

use std::path::Path;
use std::sync::Arc;

use hikitsugi::access::Role;
use hikitsugi::config::{ApiKeyConfig, AuditConfig, Config, QuestionPolicy};
use hikitsugi::metadata::MetadataStore;
use hikitsugi::secret::ApiKey;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use super::identity::{portal_token, shared_service};
use super::{
    DOC_003, HYOGO_KEY, Reply, WAKAYAMA_ADMIN_KEY, WAKAYAMA_KEY, WAKAYAMA_QUESTION, assert_error,
    doc_ids, send,
};

/// An admin of 兵庫県, known only to the audit tests' servers.
const HYOGO_ADMIN_KEY: &str = "test-hyogo-admin-key";
const HMAC_KEY: &str = "audit-test-hmac-key-0123456789";

/// A server of its own: its base URL, and its metadata directory (kept while the test runs).
struct AuditedServer {
    base: String,
    metadata_dir: tempfile::TempDir,
}

impl AuditedServer {
    /// The shared service with `audit` and a fresh SQLite metadata database, served on port 0
    /// of this test's runtime.
    async fn start(audit: AuditConfig) -> Self {
        let service = shared_service();
        let mut config: Config = (*service.config).clone();
        config.audit = audit;
        config.api_keys.push(ApiKeyConfig {
            sha256: hikitsugi::access::hash_key(HYOGO_ADMIN_KEY),
            org: "pref-hyogo".to_owned(),
            role: Role::Admin,
            label: "test-hyogo-admin".to_owned(),
        });
        let metadata_dir = tempfile::Builder::new()
            .prefix("api-e2e-audit-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a metadata directory");
        let metadata = MetadataStore::open(metadata_dir.path()).expect("the metadata database");
        let app = hikitsugi::api::router(service.with_metadata(config, Arc::new(metadata)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let address = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base: format!("http://{address}"),
            metadata_dir,
        }
    }

    async fn post(&self, path: &str, credential: &str, body: Value) -> Reply {
        let request = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(&body);
        send(request, Some(credential)).await
    }

    async fn get(&self, path: &str, credential: &str) -> Reply {
        let request = reqwest::Client::new().get(format!("{}{path}", self.base));
        send(request, Some(credential)).await
    }

    /// The records an admin sees, oldest first.
    async fn records_seen_by(&self, admin: &str) -> Vec<Value> {
        let listed = self.get("/v1/audit", admin).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        let mut records = listed.body["records"].as_array().expect("records").clone();
        records.reverse();
        records
    }
}

fn audit(questions: QuestionPolicy, required: bool) -> AuditConfig {
    AuditConfig {
        questions,
        required,
        hmac_key: Some(ApiKey::new(HMAC_KEY)),
        ..AuditConfig::default()
    }
}

/// (actor, operation, status) of each record.
fn summary(records: &[Value]) -> Vec<(String, String, u64)> {
    records
        .iter()
        .map(|record| {
            (
                record["actor"].as_str().unwrap_or_default().to_owned(),
                record["operation"].as_str().unwrap_or_default().to_owned(),
                record["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

fn request_id(reply: &Reply) -> String {
    reply.headers["x-request-id"]
        .to_str()
        .expect("an ASCII request id")
        .to_owned()
}

/// (doc_id, version, cited) of a record's documents.
fn documents(record: &Value) -> Vec<(String, String, bool)> {
    record["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|document| {
            (
                document["doc_id"].as_str().unwrap_or_default().to_owned(),
                document["version"].as_str().unwrap_or("-").to_owned(),
                document["cited"].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn two_users_of_two_organisations_leave_exactly_their_records_and_each_admin_sees_their_own()
{
    let server = AuditedServer::start(audit(QuestionPolicy::Text, false)).await;
    let tanaka = portal_token("tanaka", "pref-wakayama");

    // 和歌山県's portal user: an answer, a search, a passage read.
    let asked = server
        .post("/v1/ask", &tanaka, json!({ "question": WAKAYAMA_QUESTION }))
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert_eq!(asked.body["found"], true, "{}", asked.body);
    let streamed = reqwest::Client::new()
        .post(format!("{}/v1/ask", server.base))
        .bearer_auth(&tanaka)
        .json(&json!({ "question": WAKAYAMA_QUESTION, "stream": true }))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(streamed.status(), StatusCode::OK);
    let events = streamed.text().await.expect("the whole stream");
    assert!(events.contains("event: answer"), "{events}");
    let searched = server
        .post(
            "/v1/search",
            &tanaka,
            json!({ "query": "伴走支援の体制", "top_k": 3 }),
        )
        .await;
    assert_eq!(searched.status, StatusCode::OK, "{}", searched.body);
    let read = server
        .get(
            &format!("/v1/passages?doc_id={DOC_003}&around=0&radius=1"),
            &tanaka,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);

    // 兵庫県's key: a comparison, similar cases, a read it may not make, an export.
    let compared = server
        .post(
            "/v1/compare",
            HYOGO_KEY,
            json!({ "question": "伴走支援の体制は", "group_by": "owner" }),
        )
        .await;
    assert_eq!(compared.status, StatusCode::OK, "{}", compared.body);
    let similar = server
        .post(
            "/v1/similar",
            HYOGO_KEY,
            json!({ "text": "県が専門人材を派遣し、市町村職員の研修を行う。", "top_k": 3 }),
        )
        .await;
    assert_eq!(similar.status, StatusCode::OK, "{}", similar.body);
    let refused = server
        .get(&format!("/v1/passages?doc_id={DOC_003}"), HYOGO_KEY)
        .await;
    assert_error(&refused, StatusCode::NOT_FOUND, "not_found");
    let mut export = compared.body.clone();
    export["question"] = json!("伴走支援の体制は");
    let exported = reqwest::Client::new()
        .post(format!("{}/v1/export?format=md", server.base))
        .bearer_auth(HYOGO_KEY)
        .json(&export)
        .send()
        .await
        .expect("the server answers");
    assert_eq!(exported.status(), StatusCode::OK);
    let form = Form::new().part(
        "file",
        Part::bytes(
            "# 監査テスト\n\n監査記録の試験用の議事録です。\n"
                .as_bytes()
                .to_vec(),
        )
        .file_name("e2e-audit-trail.md"),
    );
    // 和歌山県's editor key: an upload and its deletion (和歌山県's: no other test counts its
    // documents with uploads included).
    let uploaded = send(
        reqwest::Client::new()
            .post(format!("{}/v1/documents", server.base))
            .multipart(form),
        Some(WAKAYAMA_KEY),
    )
    .await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    let uploaded_id = uploaded.body["doc_id"]
        .as_str()
        .expect("a doc id")
        .to_owned();
    let deleted = send(
        reqwest::Client::new().delete(format!("{}/v1/documents/{uploaded_id}", server.base)),
        Some(WAKAYAMA_KEY),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    // Not audited: listing documents, and reading the audit trail itself.
    assert_eq!(
        server.get("/v1/documents", HYOGO_KEY).await.status,
        StatusCode::OK
    );

    let wakayama = server.records_seen_by(WAKAYAMA_ADMIN_KEY).await;
    let actor = "portal:tanaka".to_owned();
    assert_eq!(
        summary(&wakayama),
        vec![
            (actor.clone(), "ask".to_owned(), 200),
            (actor.clone(), "ask".to_owned(), 200),
            (actor.clone(), "search".to_owned(), 200),
            (actor, "passages".to_owned(), 200),
            ("demo-wakayama".to_owned(), "upload".to_owned(), 201),
            ("demo-wakayama".to_owned(), "delete".to_owned(), 204),
        ]
    );
    let hyogo = server.records_seen_by(HYOGO_ADMIN_KEY).await;
    let key = "demo-hyogo".to_owned();
    assert_eq!(
        summary(&hyogo),
        vec![
            (key.clone(), "compare".to_owned(), 200),
            (key.clone(), "similar".to_owned(), 200),
            (key.clone(), "passages".to_owned(), 404),
            (key, "export".to_owned(), 200),
        ]
    );
    assert!(
        wakayama
            .iter()
            .all(|record| record["org"] == "pref-wakayama")
            && hyogo.iter().all(|record| record["org"] == "pref-hyogo")
    );

    // The answer's record: the user, its issuer, the question, the cited document versions.
    let ask = &wakayama[0];
    assert_eq!(ask["issuer"], "portal");
    assert_eq!(ask["question"], WAKAYAMA_QUESTION);
    assert_eq!(ask["request_id"], request_id(&asked));
    assert_eq!(
        (&ask["mode"], &ask["found"]),
        (&json!("extractive"), &json!(true))
    );
    let cited: Vec<(String, String, bool)> = asked.body["citations"]
        .as_array()
        .expect("citations")
        .iter()
        .map(|citation| {
            (
                citation["doc_id"].as_str().unwrap_or_default().to_owned(),
                citation["version"].as_str().unwrap_or_default().to_owned(),
                true,
            )
        })
        .fold(Vec::new(), |mut unique, cited| {
            if !unique.contains(&cited) {
                unique.push(cited);
            }
            unique
        });
    assert_eq!(documents(ask), cited);
    assert!(doc_ids(&asked.body["citations"]).contains(DOC_003));
    // The streamed answer's record, completed with what its `answer` event cited.
    let streamed_ask = &wakayama[1];
    assert_eq!(documents(streamed_ask), cited);
    assert_eq!(
        (&streamed_ask["mode"], &streamed_ask["found"]),
        (&json!("extractive"), &json!(true))
    );
    // The search's record: the documents returned, none cited.
    let returned = doc_ids(&searched.body["passages"]);
    let search_documents = documents(&wakayama[2]);
    assert!(
        search_documents
            .iter()
            .all(|(doc_id, _, cited)| returned.contains(doc_id) && !cited)
    );
    assert_eq!(wakayama[2]["request_id"], request_id(&searched));
    assert_eq!(
        documents(&wakayama[3]),
        vec![(
            DOC_003.to_owned(),
            read.body["document"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            false
        )]
    );
    // 兵庫県's refused read names nothing it could not see; the upload and delete name the file.
    assert!(documents(&hyogo[2]).is_empty(), "{}", hyogo[2]);
    assert_eq!(documents(&wakayama[4])[0].0, uploaded_id);
    assert_eq!(
        documents(&wakayama[5]),
        vec![(uploaded_id.clone(), "-".to_owned(), false)]
    );
    assert_eq!(hyogo[3]["question"], "伴走支援の体制は");
    assert!(hyogo.iter().all(|record| record["latency_ms"].is_u64()));

    // Never passage text.
    let every_record = format!("{wakayama:?}{hyogo:?}");
    for passage in asked.body["citations"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(searched.body["passages"].as_array().into_iter().flatten())
    {
        let text: String = passage["text"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(30)
            .collect();
        assert!(
            !every_record.contains(&text),
            "passage text in the audit: {text}"
        );
    }

    // Filters, inside the admin's own organisation only; readers and editors may not look.
    let by_document = server
        .get(&format!("/v1/audit?doc_id={DOC_003}"), WAKAYAMA_ADMIN_KEY)
        .await;
    assert!(
        by_document.body["records"]
            .as_array()
            .is_some_and(|records| records.len() == 3),
        "{}",
        by_document.body
    );
    let others = server
        .get("/v1/audit?user=demo-hyogo", WAKAYAMA_ADMIN_KEY)
        .await;
    assert_eq!(others.body["records"], json!([]), "{}", others.body);
    assert_error(
        &server.get("/v1/audit", HYOGO_KEY).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &server
            .get("/v1/audit?since=someday", WAKAYAMA_ADMIN_KEY)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
}

#[tokio::test]
async fn with_hmac_questions_the_audit_keeps_no_question_text() {
    use hmac::{Hmac, Mac};

    let server = AuditedServer::start(audit(QuestionPolicy::Hmac, false)).await;
    let asked = server
        .post(
            "/v1/ask",
            WAKAYAMA_ADMIN_KEY,
            json!({ "question": WAKAYAMA_QUESTION }),
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    let records = server.records_seen_by(WAKAYAMA_ADMIN_KEY).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HMAC_KEY.as_bytes()).expect("a key");
    mac.update(WAKAYAMA_QUESTION.as_bytes());
    let expected = format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(records[0]["question"], expected);

    // Nowhere in the database files, either.
    let database = std::fs::read_dir(server.metadata_dir.path())
        .expect("the metadata directory")
        .filter_map(Result::ok)
        .map(|entry| std::fs::read(entry.path()).unwrap_or_default())
        .collect::<Vec<_>>()
        .concat();
    let question = WAKAYAMA_QUESTION.as_bytes();
    assert!(
        !database
            .windows(question.len())
            .any(|window| window == question),
        "the question's text is in the metadata database"
    );
}

/// Makes the audit table refuse every insert, as a full disk or a read-only database would
/// (file permissions cannot: the tests may run as root).
fn make_audit_unwritable(metadata_dir: &Path) {
    sql(
        metadata_dir,
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit
         BEGIN SELECT RAISE(FAIL, 'the audit database is not writable'); END;",
    );
}

/// Runs `statements` on the metadata database in `metadata_dir`.
fn sql(metadata_dir: &Path, statements: &str) {
    rusqlite::Connection::open(metadata_dir.join(hikitsugi::metadata::METADATA_FILE))
        .expect("the metadata database")
        .execute_batch(statements)
        .expect("the statements");
}

#[tokio::test]
async fn a_required_audit_that_cannot_be_written_refuses_requests_with_503() {
    let required = AuditedServer::start(audit(QuestionPolicy::Text, true)).await;
    let query = json!({ "query": WAKAYAMA_QUESTION, "top_k": 3 });
    let before = required
        .post("/v1/search", WAKAYAMA_ADMIN_KEY, query.clone())
        .await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.body);

    make_audit_unwritable(required.metadata_dir.path());
    let refused = required
        .post("/v1/search", WAKAYAMA_ADMIN_KEY, query.clone())
        .await;
    assert_error(
        &refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
    );
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("監査記録"))
    );
    assert!(
        refused.body["passages"].is_null(),
        "no result leaks: {}",
        refused.body
    );
    let refused_read = required
        .get(
            &format!("/v1/passages?doc_id={DOC_003}"),
            WAKAYAMA_ADMIN_KEY,
        )
        .await;
    assert_error(
        &refused_read,
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
    );
    // What is not audited still works, and the records before the failure are still there.
    assert_eq!(
        required
            .get("/v1/documents", WAKAYAMA_ADMIN_KEY)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(required.records_seen_by(WAKAYAMA_ADMIN_KEY).await.len(), 1);

    // Not required: the same failure is logged and the request answered.
    let optional = AuditedServer::start(audit(QuestionPolicy::Text, false)).await;
    make_audit_unwritable(optional.metadata_dir.path());
    let answered = optional.post("/v1/search", WAKAYAMA_ADMIN_KEY, query).await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.body);
}

impl AuditedServer {
    async fn upload(&self, file_name: &str, credential: &str) -> Reply {
        let form = Form::new().part(
            "file",
            Part::bytes(
                "# 監査の先行記録\n\n変更の前に書かれる監査記録の試験用の議事録です。\n"
                    .as_bytes()
                    .to_vec(),
            )
            .file_name(file_name.to_owned()),
        );
        let request = reqwest::Client::new()
            .post(format!("{}/v1/documents", self.base))
            .multipart(form);
        send(request, Some(credential)).await
    }

    async fn delete(&self, doc_id: &str, credential: &str) -> Reply {
        let request = reqwest::Client::new().delete(format!("{}/v1/documents/{doc_id}", self.base));
        send(request, Some(credential)).await
    }

    async fn lists(&self, doc_id: &str, credential: &str) -> bool {
        let listed = self.get("/v1/documents", credential).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        doc_ids(&listed.body["documents"]).contains(doc_id)
    }
}

#[tokio::test]
async fn a_required_audit_refuses_a_change_it_cannot_record_and_never_one_already_made() {
    let server = AuditedServer::start(audit(QuestionPolicy::Text, true)).await;
    // 和歌山県's editor key (no other test counts 和歌山県's documents with uploads included).
    let file_name = "e2e-audit-ahead.md";

    make_audit_unwritable(server.metadata_dir.path());
    let refused = server.upload(file_name, WAKAYAMA_KEY).await;
    assert_error(
        &refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
    );
    let listed = server.get("/v1/documents", WAKAYAMA_KEY).await;
    assert!(
        !listed.body.to_string().contains(file_name),
        "a refused upload was stored: {}",
        listed.body
    );

    sql(server.metadata_dir.path(), "DROP TRIGGER refuse_audit;");
    let uploaded = server.upload(file_name, WAKAYAMA_KEY).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    let doc_id = uploaded.body["doc_id"]
        .as_str()
        .expect("a doc id")
        .to_owned();
    make_audit_unwritable(server.metadata_dir.path());
    let refused = server.delete(&doc_id, WAKAYAMA_KEY).await;
    assert_error(
        &refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
    );
    assert!(
        server.lists(&doc_id, WAKAYAMA_KEY).await,
        "a refused delete deleted"
    );

    // A record written ahead whose outcome cannot be written: the change is made and answered
    // as made, and the record ahead names it.
    sql(
        server.metadata_dir.path(),
        "DROP TRIGGER refuse_audit;
         CREATE TRIGGER refuse_outcomes BEFORE UPDATE ON audit
         BEGIN SELECT RAISE(FAIL, 'the audit database is not writable'); END;",
    );
    let deleted = server.delete(&doc_id, WAKAYAMA_KEY).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    assert!(!server.lists(&doc_id, WAKAYAMA_KEY).await, "not deleted");

    let records = server.records_seen_by(WAKAYAMA_ADMIN_KEY).await;
    let actor = "demo-wakayama".to_owned();
    assert_eq!(
        summary(&records),
        vec![
            (actor.clone(), "upload".to_owned(), 201),
            (actor.clone(), "delete".to_owned(), 0),
        ],
        "{records:#?}"
    );
    assert_eq!(
        documents(&records[1]),
        vec![(doc_id.clone(), "-".to_owned(), false)]
    );
}
