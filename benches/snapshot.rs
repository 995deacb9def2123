//! Placeholder until the snapshot bench lands.
fn main() {}
