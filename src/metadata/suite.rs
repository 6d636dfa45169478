//! One contract for every metadata backend: the same calls and expectations, run on SQLite
//! always and on PostgreSQL when the tests were built with `DATABASE_URL` (`.ci/run` sets it;
//! without it the PostgreSQL run is ignored, with the reason, rather than passing unrun).
//!
//! A PostgreSQL database outlives the run and may be shared by several, so every record here
//! names organisations of this run only (a fresh suffix), and pruning is tested on records
//! dated in the year 2000.

use std::sync::PoisonError;

use super::*;

/// 2000-01-01T00:00:00Z and a day later, in Unix milliseconds.
const Y2K_MS: i64 = 946_684_800_000;
const DAY_MS: i64 = 86_400_000;

fn feedback(org: &str, rating: Rating, question: &str) -> Feedback {
    Feedback {
        id: String::new(),
        created_at: 0,
        org: org.to_owned(),
        user: "demo".to_owned(),
        question: question.to_owned(),
        answer: "答え。[1]".to_owned(),
        mode: "extractive".to_owned(),
        found: true,
        rating,
        comment: Some("根拠が違う".to_owned()),
        citations: vec![CitedVersion {
            doc_id: "003.txt".to_owned(),
            version: "v1".to_owned(),
        }],
    }
}

fn record(org: &str, actor: &str, operation: Operation, at_ms: i64) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        at_ms,
        request_id: uuid::Uuid::new_v4().to_string(),
        org: org.to_owned(),
        actor: actor.to_owned(),
        issuer: None,
        operation,
        question: None,
        documents: Vec::new(),
        mode: None,
        found: None,
        status: 200,
        latency_ms: 12,
    }
}

fn document(doc_id: &str, version: Option<&str>, cited: bool) -> AuditedDocument {
    AuditedDocument {
        doc_id: doc_id.to_owned(),
        version: version.map(str::to_owned),
        cited,
    }
}

fn filter(org: &str) -> AuditFilter {
    AuditFilter {
        org: Some(org.to_owned()),
        limit: 100,
        ..AuditFilter::default()
    }
}

/// Runs every expectation on stores `open` opens (each call opens the same database again).
fn contract(open: impl Fn() -> MetadataStore) {
    let run = uuid::Uuid::new_v4().simple().to_string();
    feedback_is_kept_per_organisation_across_reopening(&open, &run);
    audit_records_come_back_whole_and_filtered(&open(), &run);
    a_streamed_record_is_completed_once_the_answer_is_known(&open(), &run);
    a_record_written_ahead_is_completed_by_the_outcome(&open(), &run);
    a_new_record_never_overwrites_one_of_the_same_id(&open(), &run);
    more_records_than_one_query_binds_keep_their_documents(&open(), &run);
    records_of_one_millisecond_come_back_newest_first(&open(), &run);
    records_older_than_the_retention_are_pruned(&open(), &run);
}

fn feedback_is_kept_per_organisation_across_reopening(
    open: &impl Fn() -> MetadataStore,
    run: &str,
) {
    let (a, b, c) = (
        format!("pref-a-{run}"),
        format!("pref-b-{run}"),
        format!("pref-c-{run}"),
    );
    let store = open();
    let stored = store
        .record_feedback(feedback(&a, Rating::Down, "質問1"))
        .expect("record");
    assert!(!stored.id.is_empty() && stored.created_at > 0);
    store
        .record_feedback(feedback(&a, Rating::Up, "質問2"))
        .expect("record");
    store
        .record_feedback(feedback(&b, Rating::Down, "質問3"))
        .expect("record");
    drop(store);

    let store = open();
    let of_a = store.feedback_of(&a, false).expect("read");
    assert_eq!(of_a.len(), 2);
    assert!(of_a.iter().all(|f| f.org == a));
    let downs = store.feedback_of(&a, true).expect("read");
    assert_eq!(downs, vec![stored]);
    assert!(store.feedback_of(&c, false).expect("read").is_empty());
}

fn audit_records_come_back_whole_and_filtered(store: &MetadataStore, run: &str) {
    let (wakayama, hyogo) = (format!("pref-wakayama-{run}"), format!("pref-hyogo-{run}"));
    let now = Y2K_MS + 400 * DAY_MS;
    let asked = AuditRecord {
        issuer: Some("portal".to_owned()),
        question: Some("オンラインよろず相談は".to_owned()),
        documents: vec![
            document("003.txt", Some("v1"), true),
            document("000.txt", Some("v7"), false),
        ],
        mode: Some("extractive".to_owned()),
        found: Some(true),
        ..record(&wakayama, "portal:tanaka", Operation::Ask, now)
    };
    let searched = AuditRecord {
        documents: vec![document("000.txt", Some("v7"), false)],
        ..record(&wakayama, "wakayama-key", Operation::Search, now + 1_000)
    };
    let deleted = AuditRecord {
        documents: vec![document("uploads/x.md", None, false)],
        status: 204,
        ..record(&hyogo, "hyogo-key", Operation::Delete, now + 2_000)
    };
    for audited in [&asked, &searched, &deleted] {
        store.record_audit(audited).expect("record");
    }

    assert_eq!(
        store.audit_records(&filter(&wakayama)).expect("read"),
        vec![searched.clone(), asked.clone()],
        "newest first, every field and document as written"
    );
    assert_eq!(
        store.audit_records(&filter(&hyogo)).expect("read"),
        vec![deleted]
    );
    let by_actor = AuditFilter {
        actor: Some("portal:tanaka".to_owned()),
        ..filter(&wakayama)
    };
    assert_eq!(
        store.audit_records(&by_actor).expect("read"),
        vec![asked.clone()]
    );
    let by_document = AuditFilter {
        doc_id: Some("003.txt".to_owned()),
        ..filter(&wakayama)
    };
    assert_eq!(
        store.audit_records(&by_document).expect("read"),
        vec![asked.clone()]
    );
    let by_operation = AuditFilter {
        operation: Some(Operation::Search),
        ..filter(&wakayama)
    };
    assert_eq!(
        store.audit_records(&by_operation).expect("read"),
        vec![searched.clone()]
    );
    let since = AuditFilter {
        since_ms: Some(now + 500),
        ..filter(&wakayama)
    };
    assert_eq!(
        store.audit_records(&since).expect("read"),
        vec![searched.clone()]
    );
    let limited = AuditFilter {
        limit: 1,
        ..filter(&wakayama)
    };
    assert_eq!(store.audit_records(&limited).expect("read"), vec![searched]);
}

fn a_streamed_record_is_completed_once_the_answer_is_known(store: &MetadataStore, run: &str) {
    let org = format!("pref-stream-{run}");
    let started = record(&org, "key", Operation::Ask, Y2K_MS + 500 * DAY_MS);
    store.record_audit(&started).expect("record");
    let cited = [document("003.txt", Some("v1"), true)];
    for _ in 0..2 {
        store
            .complete_audit(&started.id, &cited, Some("generated"), Some(true), 1_234)
            .expect("complete");
    }
    let completed = AuditRecord {
        documents: cited.to_vec(),
        mode: Some("generated".to_owned()),
        found: Some(true),
        latency_ms: 1_234,
        ..started
    };
    assert_eq!(
        store.audit_records(&filter(&org)).expect("read"),
        vec![completed]
    );
}

fn a_record_written_ahead_is_completed_by_the_outcome(store: &MetadataStore, run: &str) {
    let org = format!("pref-ahead-{run}");
    let ahead = AuditRecord {
        status: 0,
        documents: vec![document("draft.md", None, false)],
        ..record(&org, "editor", Operation::Upload, Y2K_MS + 600 * DAY_MS)
    };
    store.record_audit(&ahead).expect("record ahead");
    let outcome = AuditRecord {
        status: 201,
        latency_ms: 4_321,
        documents: vec![document("draft.md", Some("v2"), false)],
        ..ahead.clone()
    };
    store
        .complete_written_ahead(&outcome)
        .expect("record the outcome");
    assert_eq!(
        store.audit_records(&filter(&org)).expect("read"),
        vec![outcome]
    );
}

fn a_new_record_never_overwrites_one_of_the_same_id(store: &MetadataStore, run: &str) {
    let org = format!("pref-once-{run}");
    let first = AuditRecord {
        documents: vec![document("000.txt", Some("v1"), true)],
        ..record(&org, "key", Operation::Ask, Y2K_MS + 700 * DAY_MS)
    };
    store.record_audit(&first).expect("record");
    let second = AuditRecord {
        status: 500,
        documents: vec![
            document("001.txt", Some("v1"), false),
            document("002.txt", Some("v1"), false),
        ],
        ..first.clone()
    };
    assert!(store.record_audit(&second).is_err());
    assert_eq!(
        store.audit_records(&filter(&org)).expect("read"),
        vec![first],
        "neither the record nor its documents were touched"
    );
}

fn more_records_than_one_query_binds_keep_their_documents(store: &MetadataStore, run: &str) {
    let org = format!("pref-many-{run}");
    let count = audit::IDS_PER_QUERY + 2;
    for index in 0..count {
        let numbered = AuditRecord {
            documents: vec![document(&format!("{index}.txt"), Some("v1"), false)],
            // On the first day of 2000: the pruning below removes them.
            ..record(&org, "key", Operation::Search, Y2K_MS + index as i64)
        };
        store.record_audit(&numbered).expect("record");
    }
    let all = AuditFilter {
        limit: count + 10,
        ..filter(&org)
    };
    let records = store.audit_records(&all).expect("read");
    assert_eq!(records.len(), count);
    for (newest_first, record) in records.iter().enumerate() {
        let index = count - 1 - newest_first;
        assert_eq!(
            record.documents,
            vec![document(&format!("{index}.txt"), Some("v1"), false)]
        );
    }
}

fn records_of_one_millisecond_come_back_newest_first(store: &MetadataStore, run: &str) {
    let org = format!("pref-same-ms-{run}");
    // The service's ids: time-ordered (UUIDv7), in the order a process makes them.
    let made = (0..3)
        .map(|_| AuditRecord {
            id: uuid::Uuid::now_v7().to_string(),
            ..record(&org, "key", Operation::Search, Y2K_MS + 5)
        })
        .collect::<Vec<_>>();
    for audited in made.iter().rev() {
        store.record_audit(audited).expect("record");
    }
    let newest_first: Vec<AuditRecord> = made.into_iter().rev().collect();
    assert_eq!(
        store.audit_records(&filter(&org)).expect("read"),
        newest_first
    );
}

fn records_older_than_the_retention_are_pruned(store: &MetadataStore, run: &str) {
    let org = format!("pref-prune-{run}");
    let old = AuditRecord {
        documents: vec![document("003.txt", Some("v1"), true)],
        ..record(&org, "key", Operation::Ask, Y2K_MS)
    };
    let recent = record(&org, "key", Operation::Search, Y2K_MS + 2 * DAY_MS);
    store.record_audit(&old).expect("record");
    store.record_audit(&recent).expect("record");
    assert!(store.prune_audit(Y2K_MS + DAY_MS).expect("prune") >= 1);
    assert_eq!(
        store.audit_records(&filter(&org)).expect("read"),
        vec![recent]
    );
}

/// The PostgreSQL runs share one database, and pruning removes every organisation's records
/// of 2000: one run at a time.
static POSTGRES_CONTRACT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The test database's URL, and the turn to use it.
fn test_database() -> (std::sync::MutexGuard<'static, ()>, String) {
    let turn = POSTGRES_CONTRACT
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL names the test database");
    (turn, url)
}

#[test]
fn the_contract_holds_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    contract(|| MetadataStore::open(dir.path()).expect("open"));
}

#[test]
#[cfg_attr(
    not(hikitsugi_postgres_tests),
    ignore = "needs DATABASE_URL (a PostgreSQL database) when the tests are built; .ci/run sets it"
)]
fn the_contract_holds_on_postgresql() {
    let (_alone, url) = test_database();
    contract(|| MetadataStore::connect(&url, None).expect("connect"));
}

/// A certificate authority, and a certificate it signed for `localhost` with its key.
struct Authority {
    pem: String,
    server: rustls::ServerConfig,
}

fn new_authority(name: &str) -> Authority {
    let ca_key = rcgen::KeyPair::generate().expect("a CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_owned());
    let ca = ca.self_signed(&ca_key).expect("the CA's certificate");
    let server_key = rcgen::KeyPair::generate().expect("a server key");
    let server = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("server parameters")
        .signed_by(&server_key, &ca, &ca_key)
        .expect("the server's certificate");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![server.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .expect("the server's TLS configuration");
    Authority {
        pem: ca.pem(),
        server: config,
    }
}

/// A PostgreSQL server's TLS opening in front of `database` (plain TCP), on a thread of its
/// own: answers each client's SSLRequest with `S`, completes the TLS handshake with `server`,
/// then relays the bytes. Returns its port and the count of completed handshakes.
fn tls_proxy(
    server: rustls::ServerConfig,
    database: Option<std::net::SocketAddr>,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let handshakes = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = handshakes.clone();
    let (port_sender, port) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let bound = listener.local_addr().expect("address").port();
            port_sender.send(bound).expect("send the port");
            let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server));
            while let Ok((mut client, _)) = listener.accept().await {
                let (acceptor, counted) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut request = [0_u8; 8];
                    client.read_exact(&mut request).await?;
                    client.write_all(b"S").await?;
                    let mut tls = acceptor.accept(client).await?;
                    counted.fetch_add(1, Ordering::SeqCst);
                    if let Some(database) = database {
                        let mut upstream = tokio::net::TcpStream::connect(database).await?;
                        tokio::io::copy_bidirectional(&mut tls, &mut upstream).await?;
                    }
                    std::io::Result::Ok(())
                });
            }
        });
    });
    (port.recv().expect("the proxy's port"), handshakes)
}

/// `url` with its host and port replaced, and `sslmode=require`.
fn tls_url(url: &str, host: &str, port: u16) -> String {
    let (scheme_and_user, rest) = url.rsplit_once('@').expect("a URL with a user");
    let (_, database) = rest.split_once('/').expect("a URL with a database");
    let separator = if database.contains('?') { '&' } else { '?' };
    format!("{scheme_and_user}@{host}:{port}/{database}{separator}sslmode=require")
}

#[test]
#[cfg_attr(
    not(hikitsugi_postgres_tests),
    ignore = "needs DATABASE_URL (a PostgreSQL database) when the tests are built; .ci/run sets it"
)]
fn the_contract_holds_on_postgresql_over_tls() {
    let (_alone, url) = test_database();
    let config: postgres::Config = url.parse().expect("DATABASE_URL is a PostgreSQL URL");
    let database = match (&config.get_hosts()[0], config.get_ports().first()) {
        (postgres::config::Host::Tcp(host), port) => {
            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port.unwrap_or(&5432)))
                .expect("the database's address")
                .next()
                .expect("an address")
        }
        _ => panic!("DATABASE_URL must name a TCP host for this test"),
    };
    let authority = new_authority("hikitsugi test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &authority.pem).expect("write the CA file");
    let (port, handshakes) = tls_proxy(authority.server, Some(database));
    let over_tls = tls_url(&url, "localhost", port);
    contract(|| MetadataStore::connect(&over_tls, Some(&ca_file)).expect("connect over TLS"));
    assert!(handshakes.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

#[test]
fn a_server_certificate_that_no_trusted_authority_signed_or_for_another_host_is_refused() {
    let authority = new_authority("hikitsugi test CA");
    let (port, handshakes) = tls_proxy(authority.server, None);
    let url = "postgres://hikitsugi:secret@localhost:1/hikitsugi";
    let refused = |url: &str, ca_file: Option<&Path>| match MetadataStore::connect(url, ca_file) {
        Ok(_) => panic!("{url} connected"),
        Err(error) => error.to_string(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, new_authority("another CA").pem).expect("write");
    let own_ca = dir.path().join("ca.pem");
    std::fs::write(&own_ca, &authority.pem).expect("write");

    for (host, ca_file) in [
        ("localhost", None),
        ("localhost", Some(other_ca.as_path())),
        // The certificate names localhost, not the address.
        ("127.0.0.1", Some(own_ca.as_path())),
    ] {
        let error = refused(&tls_url(url, host, port), ca_file);
        assert!(
            error.contains("certificate") && error.contains("metadata.ca_file"),
            "{host}, {ca_file:?}: {error}"
        );
        assert!(!error.contains("secret"), "{error}");
    }
    assert_eq!(handshakes.load(std::sync::atomic::Ordering::SeqCst), 0);

    let plain_with_ca = refused(url, Some(&own_ca));
    assert!(plain_with_ca.contains("sslmode=require"), "{plain_with_ca}");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not a certificate").expect("write");
    let unreadable = refused(&tls_url(url, "localhost", port), Some(&not_pem));
    assert!(unreadable.contains("metadata.ca_file"), "{unreadable}");
}
