//! The declarations carry the scaling settings `fabrikam scale recommend` chose
//! (`scripts/recommend-scaling`, kept in docs/scaling/recommended-PROFILE.json): a declaration
//! changed without a new search, or a search whose choice was not copied into the
//! declarations, fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use host::manifests::declarations;
use runtime::deploy::Profile;
use serde_json::Value;

fn record(profile: Profile) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/scaling")
        .join(format!("recommended-{}.json", profile.name()));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/recommend-scaling", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_declaration_carries_the_settings_recommended_for_each_profile() {
    let functions = declarations();
    for profile in Profile::ALL {
        let record = record(profile);
        assert_eq!(record["profile"], profile.name());
        let searched = record["functions"].as_object().unwrap();
        for f in &functions {
            let found = searched
                .get(&f.name)
                .unwrap_or_else(|| panic!("{} was not searched for {}", f.name, profile.name()));
            // The chosen settings, or, where none met the target, the settings searched
            // from: the declaration must still be those.
            let expected = if found["chosen"].is_null() {
                &found["now"]
            } else {
                &found["chosen"]
            };
            let declared = f.scaling.profile(profile);
            let carried = (
                f64::from(declared.target_per_replica),
                u64::from(declared.max),
                u64::from(declared.cooldown_seconds),
            );
            let recommended = (
                expected["targetPerReplica"].as_f64().unwrap(),
                expected["maxReplicaCount"].as_u64().unwrap(),
                expected["cooldownSeconds"].as_u64().unwrap(),
            );
            assert_eq!(
                carried,
                recommended,
                "{} ({}): declared (target, max, cooldown) against docs/scaling/recommended-{}.json",
                f.name,
                profile.name(),
                profile.name()
            );
        }
        assert_eq!(
            searched.len(),
            functions.len(),
            "the record names a function that is not registered"
        );
    }
}
