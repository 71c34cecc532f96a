//! Certificate, key and CA bytes through the store's validator (`certstore::check_bytes`);
//! the input framing and the invariants checked are in `src/harness.rs`.
#![no_main]

#[path = "../src/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = harness::run(data);
});
