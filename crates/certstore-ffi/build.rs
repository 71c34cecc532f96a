// The shared library is versioned by its ABI: the SONAME is libcertstore.so.<ABI version>,
// the constant the header carries as CERTSTORE_ABI_VERSION.
include!("src/abi.rs");

fn main() {
    println!("cargo:rerun-if-changed=src/abi.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcertstore.so.{CERTSTORE_ABI_VERSION}");
    }
}
