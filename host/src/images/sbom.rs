//! The software bill of materials of an image, as CycloneDX 1.5 JSON: the function's
//! binary, every crate compiled into it (from `cargo tree` over the packages built
//! together, with the crates' checksums from `Cargo.lock`), the C library linked in
//! statically, and the CA certificates.
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

/// The crates compiled into each of `packages`' binaries for `target`, by package: their
/// normal dependencies, without proc macros and build dependencies (they run at build time
/// and are not linked). The packages are resolved together, as `scripts/images` builds them
/// in one `cargo build`, so each crate is listed with the features it was compiled with.
pub fn crates_of(
    workspace: &Path,
    packages: &[&str],
    target: &str,
) -> io::Result<BTreeMap<String, Vec<Crate>>> {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(workspace)
        .args(["tree", "--locked", "--quiet", "--target", target])
        .args([
            "-e",
            "normal,no-proc-macro",
            "--prefix",
            "depth",
            "-f",
            "{l}\t{p}",
        ]);
    for package in packages {
        command.args(["-p", package]);
    }
    let output = command.output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_tree(&String::from_utf8_lossy(&output.stdout), workspace)
}

/// Each root package's crates (itself included, each once, sorted), from the output of
/// `cargo tree --prefix depth -f '{l}\t{p}'` for several packages. `cargo tree` prints a
/// crate's dependencies only the first time it shows the crate (marking later ones `(*)`),
/// possibly under another root, so the edges are collected from the whole output and each
/// root's crates are what it reaches. Crates under `workspace` are marked as the
/// workspace's own, without their local path.
pub fn parse_tree(text: &str, workspace: &Path) -> io::Result<BTreeMap<String, Vec<Crate>>> {
    let mut edges: BTreeMap<Crate, std::collections::BTreeSet<Crate>> = BTreeMap::new();
    let mut roots = Vec::new();
    let mut path: Vec<Crate> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let bad = || io::Error::other(format!("unexpected cargo tree line {line:?}"));
        let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let depth: usize = line[..digits].parse().map_err(|_| bad())?;
        let krate = parse_crate(&line[digits..], workspace).ok_or_else(bad)?;
        path.truncate(depth);
        if path.len() != depth {
            return Err(bad());
        }
        match path.last() {
            Some(parent) => {
                edges
                    .entry(parent.clone())
                    .or_default()
                    .insert(krate.clone());
            }
            None => roots.push(krate.clone()),
        }
        edges.entry(krate.clone()).or_default();
        path.push(krate);
    }
    let mut out = BTreeMap::new();
    for root in roots {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![root.clone()];
        while let Some(krate) = stack.pop() {
            if seen.insert(krate.clone()) {
                stack.extend(edges.get(&krate).into_iter().flatten().cloned());
            }
        }
        out.insert(root.name.clone(), seen.into_iter().collect());
    }
    Ok(out)
}

/// One `{l}\t{p}` entry: `MIT\ttokio v1.48.0`, with a source in brackets for crates not
/// from crates.io and ` (*)` when cargo tree shows it again.
fn parse_crate(entry: &str, workspace: &Path) -> Option<Crate> {
    let entry = entry.trim_end().trim_end_matches(" (*)");
    let (license, package) = entry.split_once('\t')?;
    let mut parts = package.splitn(3, ' ');
    let name = parts.next()?;
    let version = parts.next()?.strip_prefix('v')?;
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
    Some(Crate {
        name: name.to_owned(),
        version: version.to_owned(),
        license: Some(license.to_owned()).filter(|l| !l.is_empty()),
        source,
    })
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

    const TREE: &str = "0MIT\tingestion v0.1.0 (/work/main/functions/ingestion)
1MIT\truntime v0.1.0 (/work/main/runtime)
2MIT OR Apache-2.0\ttokio v1.48.0
3MIT\tbytes v1.1.0
1MIT OR Apache-2.0\ttokio v1.48.0 (*)
1\tno-license v0.1.0 (https://example.com/index)
0MIT\tworkflow v0.1.0 (/work/main/functions/workflow)
1MIT\truntime v0.1.0 (/work/main/runtime) (*)
";

    #[test]
    fn each_root_gets_what_it_reaches_even_through_a_crate_shown_under_another_root() {
        let crates = parse_tree(TREE, Path::new("/work/main")).unwrap();
        let names = |root: &str| -> Vec<(String, Option<String>)> {
            crates[root]
                .iter()
                .map(|c| (format!("{}@{}", c.name, c.version), c.source.clone()))
                .collect()
        };
        let workspace = || Some("workspace".to_owned());
        assert_eq!(
            names("ingestion"),
            [
                ("bytes@1.1.0".to_owned(), None),
                ("ingestion@0.1.0".to_owned(), workspace()),
                (
                    "no-license@0.1.0".to_owned(),
                    Some("https://example.com/index".to_owned())
                ),
                ("runtime@0.1.0".to_owned(), workspace()),
                ("tokio@1.48.0".to_owned(), None),
            ]
        );
        // workflow's runtime was printed once, under ingestion; its crates are workflow's too.
        assert_eq!(
            names("workflow")
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            [
                "bytes@1.1.0",
                "runtime@0.1.0",
                "tokio@1.48.0",
                "workflow@0.1.0"
            ]
        );
        let no_license = crates["ingestion"]
            .iter()
            .find(|c| c.name == "no-license")
            .unwrap();
        assert_eq!(no_license.license, None);
        assert!(parse_tree("garbage", Path::new("/")).is_err());
        assert!(parse_tree("2MIT\tdeep v1.0.0", Path::new("/")).is_err());
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
        let crates = parse_tree(TREE, Path::new("/work/main")).unwrap()["ingestion"].clone();
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
