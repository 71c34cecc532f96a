//! include/certstore.h must be exactly what cbindgen generates from this crate.
//! `make header` (CERTSTORE_BLESS_HEADER=1) rewrites it instead of failing.

use std::path::Path;

#[test]
fn committed_header_is_fresh() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let header = crate_dir.join("../../include/certstore.h");
    if std::env::var_os("CERTSTORE_BLESS_HEADER").is_some() {
        std::fs::write(&header, &generated).expect("write include/certstore.h");
        return;
    }
    let committed = std::fs::read(&header).unwrap_or_default();
    assert!(
        committed == generated,
        "include/certstore.h is stale: run `make header` and commit it"
    );
}
