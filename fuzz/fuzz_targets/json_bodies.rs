//! The API's inbound JSON request bodies on arbitrary bytes: each body type parsed as
//! its handler's extractor does, converted into domain values as the handler does, and
//! every refusal rendered as a problem document (`convene::http::api::fuzz_inbound`).
//! It must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    convene::http::api::fuzz_inbound(data);
});
