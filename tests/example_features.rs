//! The examples the integration tests build (`tests/example_binary`) get the
//! test's own features: a feature added to `Cargo.toml` but not to that
//! list would silently be left out of them.

#[allow(dead_code)]
mod example_binary;

use example_binary::FEATURES;

#[test]
fn example_builds_know_every_crate_feature() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("Cargo.toml");
    let section = manifest
        .split("\n[features]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [features] section");
    let declared: Vec<&str> = section
        .lines()
        .filter_map(|line| line.split_once(" = "))
        .map(|(name, _)| name.trim())
        .filter(|name| !name.starts_with('#') && *name != "default")
        .collect();
    assert!(!declared.is_empty(), "no features read from Cargo.toml");
    for name in declared {
        assert!(
            FEATURES.iter().any(|(known, _)| *known == name),
            "feature {name:?} is missing from tests/example_binary FEATURES"
        );
    }
}
