//! Placeholder until the alcohol bench is written.
fn main() {}
