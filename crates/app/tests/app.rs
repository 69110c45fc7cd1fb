//! The app's integration tests: the real router and server on port 0, over the testkit's
//! fakes (and, in `sqlite`, over the SQLite store). One test binary, modules per area.

mod app {
    mod admin;
    mod api;
    mod backup;
    mod binary;
    mod browser;
    mod canary;
    mod demo;
    mod harness;
    mod haystack;
    mod sqlite;
    mod tenant;
    mod tls;
    mod trust_access;
    mod trust_audit;
    mod trust_concurrency;
    mod trust_faults;
    mod trust_oauth;
    mod trust_privacy;
    mod web;
}
