//! Compiles the PostgreSQL tests only when `DATABASE_URL` is set at build time (the
//! `has_database_url` cfg); without it they are skipped, and one always-compiled test
//! says so (and fails when `CONVENE_REQUIRE_PEERS=1`).

fn main() {
    println!("cargo:rustc-check-cfg=cfg(has_database_url)");
    println!("cargo:rerun-if-env-changed=DATABASE_URL");
    if std::env::var_os("DATABASE_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=has_database_url");
    }
}
