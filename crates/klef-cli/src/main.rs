//! The `klef` binary.
fn main() {}
