//! The software bill of materials of an image, as CycloneDX 1.5 JSON: the function's
//! binary, every crate compiled into it (from `cargo tree`, which resolves features as
//! `cargo build -p <function>` does, with the crates' checksums from `Cargo.lock`), the C
//! library linked in statically, and the CA certificates.
//!
//! Written by hand rather than with `cargo-cyclonedx`: that tool would be one more long
//! `cargo install` on a fresh machine, and its documents carry the build's own time and a
//! random serial number, which would make two builds of one commit differ.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// A crate linked into a binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// SPDX expression from the crate's manifest, if it has one.
    pub license: Option<String>,
    /// Where it comes from: `None` for crates.io, `Some("workspace")` for this workspace's
    /// own crates, otherwise the source cargo names (a git URL, another registry).
    pub source: Option<String>,
}

/// What the image holds besides crates.
#[derive(Debug, Clone)]
pub struct ImageFacts<'a> {
    /// The image's repository name and tag.
    pub name: &'a str,
    pub tag: &'a str,
    pub created: &'a str,
    /// The binary's path in the image and its `sha256:<hex>`.
    pub binary_path: &'a str,
    pub binary_digest: &'a str,
    /// The CA bundle's Debian package version and `sha256:<hex>`.
    pub ca_version: &'a str,
    pub ca_digest: &'a str,
}

/// The crates compiled into `package`'s binary for `target`: its normal dependencies,
/// without proc macros and build dependencies (they run at build time and are not linked).
pub fn crates_of(workspace: &Path, package: &str, target: &str) -> io::Result<Vec<Crate>> {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(workspace)
        .args([
            "tree", "--locked", "--quiet", "-p", package, "--target", target,
        ])
        .args([
            "-e",
            "normal,no-proc-macro",
            "--prefix",
            "none",
            "-f",
            "{l}\t{p}",
        ])
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "cargo tree -p {package} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_tree(&String::from_utf8_lossy(&output.stdout), workspace)
}

/// The crates of `cargo tree -f '{l}\t{p}' --prefix none` output, each once, sorted.
/// Crates under `workspace` are marked as the workspace's own, without their local path.
pub fn parse_tree(text: &str, workspace: &Path) -> io::Result<Vec<Crate>> {
    let mut crates = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let line = line.trim_end().trim_end_matches(" (*)");
        let bad = || io::Error::other(format!("unexpected cargo tree line {line:?}"));
        let (license, package) = line.split_once('\t').ok_or_else(bad)?;
        let mut parts = package.splitn(3, ' ');
        let name = parts.next().ok_or_else(bad)?;
        let version = parts
            .next()
            .and_then(|v| v.strip_prefix('v'))
            .ok_or_else(bad)?;
        let source = parts
            .next()
            .map(|s| s.trim_start_matches('(').trim_end_matches(')'))
            .map(|s| {
                if Path::new(s).starts_with(workspace) {
                    "workspace".to_owned()
                } else {
                    s.to_owned()
                }
            });
        crates.insert(Crate {
            name: name.to_owned(),
            version: version.to_owned(),
            license: Some(license.to_owned()).filter(|l| !l.is_empty()),
            source,
        });
    }
    Ok(crates.into_iter().collect())
}

/// `(name, version)` to the `.crate` file's sha256, from a `Cargo.lock`.
///
/// Read line by line: the lock file's `[[package]]` blocks are a fixed, flat shape, and
/// this needs three keys of them, not a TOML parser in the build.
pub fn lock_checksums(lock: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let (mut name, mut version) = (None, None);
    for line in lock.lines() {
        let value = |key: &str| {
            line.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(" = \""))
                .and_then(|rest| rest.strip_suffix('"'))
                .map(str::to_owned)
        };
        if line == "[[package]]" {
            (name, version) = (None, None);
        } else if let Some(v) = value("name") {
            name = Some(v);
        } else if let Some(v) = value("version") {
            version = Some(v);
        } else if let (Some(sum), Some(n), Some(v)) = (value("checksum"), &name, &version) {
            out.insert((n.clone(), v.clone()), sum);
        }
    }
    out
}

fn purl(c: &Crate) -> String {
    format!("pkg:cargo/{}@{}", c.name, c.version)
}

/// The CycloneDX document. `root` is the function's own crate, among `crates`.
pub fn document(
    facts: &ImageFacts<'_>,
    root: &str,
    crates: &[Crate],
    checksums: &BTreeMap<(String, String), String>,
) -> Value {
    let hash = |digest: &str| json!([{ "alg": "SHA-256", "content": digest.trim_start_matches("sha256:") }]);
    let mut components: Vec<Value> = crates
        .iter()
        .map(|c| {
            let mut component = json!({
                "type": if c.name == root { "application" } else { "library" },
                "bom-ref": purl(c),
                "name": c.name,
                "version": c.version,
                "purl": purl(c),
            });
            if let Some(license) = &c.license {
                component["licenses"] = json!([{ "expression": license }]);
            }
            match c.source.as_deref() {
                None => {
                    if let Some(sum) = checksums.get(&(c.name.clone(), c.version.clone())) {
                        component["hashes"] = json!([{ "alg": "SHA-256", "content": sum }]);
                    }
                }
                Some("workspace") => {
                    component["properties"] =
                        json!([{ "name": "fabrikam:source", "value": "this repository" }]);
                }
                Some(other) => {
                    component["properties"] = json!([{ "name": "cargo:source", "value": other }]);
                }
            }
            if c.name == root {
                component["hashes"] = hash(facts.binary_digest);
                component["properties"] =
                    json!([{ "name": "fabrikam:path", "value": facts.binary_path }]);
            }
            component
        })
        .collect();
    components.push(json!({
        "type": "library",
        "bom-ref": "musl",
        "name": "musl",
        "description": "C library, linked statically from Rust's x86_64-unknown-linux-musl target",
        "licenses": [{ "expression": "MIT" }],
    }));
    components.push(json!({
        "type": "data",
        "bom-ref": format!("pkg:deb/debian/ca-certificates@{}", facts.ca_version),
        "name": "ca-certificates",
        "version": facts.ca_version,
        "purl": format!("pkg:deb/debian/ca-certificates@{}?arch=all", facts.ca_version),
        "hashes": hash(facts.ca_digest),
        "licenses": [{ "expression": "MPL-2.0" }],
    }));
    // A name-based UUID: the same image always gets the same serial number.
    let serial = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("{}:{}@{}", facts.name, facts.tag, facts.binary_digest).as_bytes(),
    );
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{serial}"),
        "version": 1,
        "metadata": {
            "timestamp": facts.created,
            "tools": { "components": [{
                "type": "application",
                "name": "fabrikam images",
                "version": env!("CARGO_PKG_VERSION"),
            }] },
            "component": {
                "type": "container",
                "bom-ref": format!("{}:{}", facts.name, facts.tag),
                "name": facts.name,
                "version": facts.tag,
            },
        },
        "components": components,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TREE: &str = "MIT\tingestion v0.1.0 (/work/main/functions/ingestion)
MIT\truntime v0.1.0 (/work/main/runtime)
MIT OR Apache-2.0\ttokio v1.48.0
MIT OR Apache-2.0\ttokio v1.48.0 (*)
\tno-license v0.1.0 (https://example.com/index)
";

    #[test]
    fn cargo_tree_lines_become_crates_each_once_with_workspace_paths_hidden() {
        let crates = parse_tree(TREE, Path::new("/work/main")).unwrap();
        let names: Vec<(&str, &str, Option<&str>)> = crates
            .iter()
            .map(|c| (c.name.as_str(), c.version.as_str(), c.source.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("ingestion", "0.1.0", Some("workspace")),
                ("no-license", "0.1.0", Some("https://example.com/index")),
                ("runtime", "0.1.0", Some("workspace")),
                ("tokio", "1.48.0", None),
            ]
        );
        assert_eq!(crates[1].license, None);
        assert!(parse_tree("garbage", Path::new("/")).is_err());
    }

    #[test]
    fn checksums_come_from_the_lock_file_for_registry_crates_only() {
        let lock = "[[package]]\nname = \"runtime\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"tokio\"\nversion = \"1.48.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"abc\"\n";
        let sums = lock_checksums(lock);
        assert_eq!(sums.len(), 1);
        assert_eq!(sums[&("tokio".to_owned(), "1.48.0".to_owned())], "abc");
    }

    #[test]
    fn the_document_names_the_binary_its_crates_and_the_certificates() {
        let crates = parse_tree(TREE, Path::new("/work/main")).unwrap();
        let sums = BTreeMap::from([(("tokio".to_owned(), "1.48.0".to_owned()), "abc".to_owned())]);
        let facts = ImageFacts {
            name: "fabrikam-ingestion",
            tag: "0.1.0-x",
            created: "2026-11-30T00:00:00Z",
            binary_path: "/usr/local/bin/ingestion",
            binary_digest: "sha256:0123",
            ca_version: "20230311",
            ca_digest: "sha256:4567",
        };
        let doc = document(&facts, "ingestion", &crates, &sums);
        assert_eq!(doc["bomFormat"], "CycloneDX");
        let components = doc["components"].as_array().unwrap();
        let find = |name: &str| components.iter().find(|c| c["name"] == name).unwrap();
        assert_eq!(find("ingestion")["type"], "application");
        assert_eq!(find("ingestion")["hashes"][0]["content"], "0123");
        assert_eq!(find("tokio")["purl"], "pkg:cargo/tokio@1.48.0");
        assert_eq!(find("tokio")["hashes"][0]["content"], "abc");
        assert_eq!(
            find("tokio")["licenses"][0]["expression"],
            "MIT OR Apache-2.0"
        );
        assert_eq!(find("ca-certificates")["version"], "20230311");
        assert!(
            !doc.to_string().contains("/work/main"),
            "no local path leaks: {doc}"
        );
        assert_eq!(
            doc,
            document(&facts, "ingestion", &crates, &sums),
            "deterministic"
        );
    }
}
