// Read by build.rs too (include!): the SONAME and the header constant come from this one line.

/// The version of this C ABI: the library is libcertstore.so.<CERTSTORE_ABI_VERSION> (its
/// SONAME). It changes only with an incompatible change; compatible growth (functions, event
/// kinds, fields appended behind struct_size) keeps it.
pub const CERTSTORE_ABI_VERSION: u32 = 1;
