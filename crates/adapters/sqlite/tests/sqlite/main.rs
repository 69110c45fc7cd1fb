//! The SQLite store's tests, in one binary: the testkit contract suites, then what the
//! contracts cannot see (raw rows, encryption, erasure scans, bad data, query counts).

mod common;
mod contract;
mod extra;
#[path = "../../../sql/tests/shared/scenarios.rs"]
mod scenarios;
