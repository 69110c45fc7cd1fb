//! The app's integration tests: the real router and server on port 0, over the testkit's
//! fakes (and, in `sqlite`, over the SQLite store). One test binary, modules per area.

mod app {
    mod admin;
    mod api;
    mod browser;
    mod canary;
    mod demo;
    mod harness;
    mod sqlite;
    mod tls;
    mod web;
}
