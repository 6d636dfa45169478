//! Tells the tests whether a PostgreSQL database was named when they were built: with
//! `DATABASE_URL` set, the metadata suite's PostgreSQL run is a test like any other; without
//! it, that run is ignored with the reason (never a test that passes without running).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hikitsugi_postgres_tests)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    if std::env::var_os("DATABASE_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=hikitsugi_postgres_tests");
    }
}
