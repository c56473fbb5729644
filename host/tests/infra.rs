//! `infra/functions.json`, which `infra/main.bicep` loads, is what the functions'
//! declarations give: adding a function, a secret or a queue needs no Bicep edit, and a
//! stale file fails here.

#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn infra_functions_json_is_what_the_declarations_give() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let expected = host::infra::functions_json(&host::manifests::declarations()).unwrap();
    let committed = std::fs::read_to_string(repo.join(host::infra::FUNCTIONS_JSON)).unwrap();
    assert!(
        committed == expected,
        "{} differs from the declarations; run `cargo run -p host -- functions --infra > {}`\n\
         committed:\n{committed}\ndeclared:\n{expected}",
        host::infra::FUNCTIONS_JSON,
        host::infra::FUNCTIONS_JSON,
    );
}
