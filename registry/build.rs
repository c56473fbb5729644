//! Generates `registry::FUNCTIONS` from the function lines of this crate's `Cargo.toml`:
//! every dependency whose path is under `../functions/`, in file order. Each such crate
//! exports `pub const FUNCTION: runtime::Registration`.
//!
//! Read line by line, not with a TOML parser: the lines are of one fixed shape, which
//! `fabrikam new` writes, and anything else under `[dependencies]` that points into
//! `../functions/` fails the build with the line.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("Cargo.toml");
    println!("cargo:rerun-if-changed={}", manifest.display());
    let text = match std::fs::read_to_string(&manifest) {
        Ok(text) => text,
        Err(e) => fail(&format!("cannot read {}: {e}", manifest.display())),
    };
    let mut functions = Vec::new();
    let mut in_dependencies = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if !in_dependencies || !line.contains("\"../functions/") {
            continue;
        }
        match function_crate(line) {
            Some(name) => functions.push(name),
            None => fail(&format!(
                "registry/Cargo.toml: {line:?} is not a function line: \
                 NAME = {{ path = \"../functions/NAME\" }}"
            )),
        }
    }
    let mut out = String::from(
        "/// Every registered function, in the order of `registry/Cargo.toml`.\n\
         pub const FUNCTIONS: &[runtime::Registration] = &[\n",
    );
    for name in &functions {
        let _ = writeln!(out, "    {}::FUNCTION,", name.replace('-', "_"));
    }
    out.push_str("];\n");
    let path = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("functions.rs");
    if let Err(e) = std::fs::write(&path, out) {
        fail(&format!("cannot write {}: {e}", path.display()));
    }
}

/// `name = { path = "../functions/name" }` -> `name`.
fn function_crate(line: &str) -> Option<String> {
    let (name, rest) = line.split_once('=')?;
    let name = name.trim();
    let path = rest
        .trim()
        .strip_prefix('{')?
        .strip_suffix('}')?
        .trim()
        .strip_prefix("path")?
        .trim_start()
        .strip_prefix('=')?
        .trim()
        .strip_prefix('"')?
        .strip_suffix('"')?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    (valid && path == format!("../functions/{name}")).then(|| name.to_owned())
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
