//! The function registry: the one list of functions in the workspace. `fabrikam dev`, the
//! gateway, `fabrikam manifests`, `fabrikam images`, the infra function list
//! (`infra/functions.json`) and the host's tests all read [`FUNCTIONS`].
//!
//! The list is `registry/Cargo.toml`: one dependency line per function crate, which
//! `build.rs` turns into [`FUNCTIONS`]. Adding a function is a new crate under `functions/`
//! and one line there (`fabrikam new NAME --http|--queue` writes both); see
//! `docs/writing-a-function.md`.

include!(concat!(env!("OUT_DIR"), "/functions.rs"));

/// The registered function called `name`.
pub fn get(name: &str) -> Option<&'static runtime::Registration> {
    FUNCTIONS.iter().find(|f| f.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_is_registered_once_under_its_declared_name() {
        let mut names: Vec<&str> = FUNCTIONS.iter().map(|f| f.name()).collect();
        for f in FUNCTIONS {
            assert_eq!(f.deployment().name, f.name());
        }
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a function is registered twice");
        assert!(get("workflow").is_some() && get("nothing").is_none());
    }
}
