//! Speech benchmark (filled in below).
fn main() {}
