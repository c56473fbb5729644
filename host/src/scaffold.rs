//! `fabrikam new NAME --http|--queue`: a new function crate that builds, is tested and is
//! registered. It writes the crate under `functions/NAME/` from the templates in
//! `host/templates/` (the function, its `main`, a test of its route or handler, a README),
//! adds the crate's line to the registry (`registry/Cargo.toml`), and gives the function a
//! placeholder identity in each environment's input (`keda/input/*.json`), which the deploy
//! path replaces with infra's outputs. The generated files (`keda/dev`, `keda/prod`,
//! `infra/functions.json`) are then rewritten by `scripts/generate`, from the new build.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// What kind of function to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Queue,
}

/// Why a function could not be created; nothing is written then.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "{0:?} cannot name a function: use lower-case letters, digits and '-', starting with \
         a letter, at most 40 characters"
    )]
    BadName(String),
    #[error("{0} already exists")]
    Exists(PathBuf),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Workspace(String),
}

const HTTP: [(&str, &str); 5] = [
    (
        "Cargo.toml",
        include_str!("../templates/http/Cargo.toml.template"),
    ),
    (
        "README.md",
        include_str!("../templates/http/README.md.template"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/http/lib.rs.template"),
    ),
    (
        "src/main.rs",
        include_str!("../templates/http/main.rs.template"),
    ),
    (
        "tests/routes.rs",
        include_str!("../templates/http/test.rs.template"),
    ),
];

const QUEUE: [(&str, &str); 5] = [
    (
        "Cargo.toml",
        include_str!("../templates/queue/Cargo.toml.template"),
    ),
    (
        "README.md",
        include_str!("../templates/queue/README.md.template"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/queue/lib.rs.template"),
    ),
    (
        "src/main.rs",
        include_str!("../templates/queue/main.rs.template"),
    ),
    (
        "tests/handler.rs",
        include_str!("../templates/queue/test.rs.template"),
    ),
];

/// The identity a new function has in the committed inputs until infra's outputs give the
/// real one (`fabrikam manifests --outputs`).
pub const PLACEHOLDER_CLIENT_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Creates the function `name` in the workspace at `root`; returns every file written or
/// changed, relative to `root`.
pub fn create(root: &Path, name: &str, kind: Kind) -> Result<Vec<PathBuf>, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    let dir = Path::new("functions").join(name);
    if root.join(&dir).exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let registry = Path::new("registry/Cargo.toml");
    let registry_text = read(root, registry)?;
    let line = format!("{name} = {{ path = \"../functions/{name}\" }}");
    let registry_text = with_registry_line(&registry_text, &line).ok_or_else(|| {
        ScaffoldError::Workspace(format!("{} has no function line", registry.display()))
    })?;
    let inputs = input_files(root)?;
    let mut updated_inputs = Vec::new();
    for path in &inputs {
        updated_inputs.push((path, with_identity(&read(root, path)?, name, path)?));
    }

    let crate_ident = name.replace('-', "_");
    let type_name: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    let fill = |template: &str| {
        template
            .replace("__NAME__", name)
            .replace("__CRATE__", &crate_ident)
            .replace("__TYPE__", &type_name)
            .replace("__PREFIX__", &format!("/api/{name}"))
            .replace("__QUEUE__", name)
    };
    let templates: &[(&str, &str)] = match kind {
        Kind::Http => &HTTP,
        Kind::Queue => &QUEUE,
    };
    let mut written = Vec::new();
    for (file, template) in templates {
        let path = dir.join(file);
        write(root, &path, &fill(template))?;
        written.push(path);
    }
    format_sources(root, &written);
    write(root, registry, &registry_text)?;
    written.push(registry.to_owned());
    for (path, text) in updated_inputs {
        write(root, path, &text)?;
        written.push(path.clone());
    }
    Ok(written)
}

/// Formats the new crate's Rust files as `cargo fmt` would (the templates' `use` lines sort
/// by the crate's name). Without rustfmt the files are left as written, which build as
/// they are.
fn format_sources(root: &Path, written: &[PathBuf]) {
    let sources: Vec<PathBuf> = written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| root.join(p))
        .collect();
    let formatted = std::process::Command::new("rustfmt")
        .args(["--edition", "2024"])
        .args(&sources)
        .status();
    if !formatted.is_ok_and(|s| s.success()) {
        eprintln!("fabrikam new: rustfmt did not run; run `cargo fmt` before committing");
    }
}

fn valid_name(name: &str) -> bool {
    const RESERVED: [&str; 6] = ["runtime", "registry", "host", "bench", "contracts", "test"];
    !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !RESERVED.contains(&name)
}

/// The registry's text with `line` after its last function line.
fn with_registry_line(text: &str, line: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let last = lines
        .iter()
        .rposition(|l| l.contains("= { path = \"../functions/"))?;
    let mut out: Vec<&str> = lines[..=last].to_vec();
    out.push(line);
    out.extend(&lines[last + 1..]);
    Some(out.join("\n") + "\n")
}

/// Every environment's input file, relative to the workspace.
fn input_files(root: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    let dir = Path::new("keda/input");
    let entries = std::fs::read_dir(root.join(dir)).map_err(|source| ScaffoldError::Io {
        what: format!("cannot list {}", dir.display()),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| dir.join(e.file_name()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// The input file's text with a placeholder identity for `name`.
fn with_identity(text: &str, name: &str, path: &Path) -> Result<String, ScaffoldError> {
    let bad = |why: String| ScaffoldError::Workspace(format!("{}: {why}", path.display()));
    let mut input: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let functions = input
        .get_mut("functions")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| bad("no functions object".to_owned()))?;
    functions.insert(
        name.to_owned(),
        serde_json::json!({ "clientId": PLACEHOLDER_CLIENT_ID }),
    );
    let mut out = serde_json::to_string_pretty(&input).map_err(|e| bad(e.to_string()))?;
    out.push('\n');
    Ok(out)
}

fn read(root: &Path, path: &Path) -> Result<String, ScaffoldError> {
    std::fs::read_to_string(root.join(path)).map_err(|source| ScaffoldError::Io {
        what: format!("cannot read {}", path.display()),
        source,
    })
}

fn write(root: &Path, path: &Path, text: &str) -> Result<(), ScaffoldError> {
    let full = root.join(path);
    let failed = |source| ScaffoldError::Io {
        what: format!("cannot write {}", path.display()),
        source,
    };
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::write(full, text).map_err(failed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_that_cannot_be_a_function_are_refused() {
        for name in ["", "Hello", "1st", "a_b", "a-", "runtime", &"a".repeat(41)] {
            assert!(!valid_name(name), "{name:?}");
        }
        for name in ["hello", "drone-tracker", "v2"] {
            assert!(valid_name(name), "{name:?}");
        }
    }

    #[test]
    fn the_registry_line_goes_after_the_last_function_line() {
        let text = "[dependencies]\na = { path = \"../functions/a\" }\n# not a function\nruntime.workspace = true\n";
        let out = with_registry_line(text, "b = { path = \"../functions/b\" }").unwrap();
        assert_eq!(
            out,
            "[dependencies]\na = { path = \"../functions/a\" }\nb = { path = \"../functions/b\" }\n# not a function\nruntime.workspace = true\n"
        );
    }

    #[test]
    fn every_template_placeholder_is_filled() {
        for (file, template) in HTTP.iter().chain(&QUEUE) {
            let filled = template
                .replace("__NAME__", "x")
                .replace("__CRATE__", "x")
                .replace("__TYPE__", "X")
                .replace("__PREFIX__", "/api/x")
                .replace("__QUEUE__", "x");
            assert!(
                !filled.contains("__"),
                "{file} has a placeholder create() does not fill"
            );
        }
    }
}
