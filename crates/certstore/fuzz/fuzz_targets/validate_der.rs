//! Certificate and key DER (wrapped in PEM by the target) through the store's validator: the
//! mutations land in the X.509 and key encodings rather than in base64. Framing and checks in
//! `src/harness.rs` (`run_der`).
#![no_main]

#[path = "../src/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = harness::run_der(data);
});
