// The shared library is versioned by its ABI: libcertstore.so.0 until an incompatible change.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcertstore.so.0");
    }
}
