//! `fabrikam images`: one OCI image per function, assembled without a container engine.
//!
//! Each image has two layers and no base image:
//! 1. a base layer every function shares (so a node pulls it once): the CA certificates at
//!    [`CA_BUNDLE`], and `/etc/passwd` and `/etc/group` naming the non-root user 65532;
//! 2. the function's statically linked binary at `/usr/local/bin/<function>`, the
//!    entrypoint. A binary that needs a dynamic loader is refused, since the image holds
//!    none.
//!
//! There is no shell, no package manager and nothing writable: the Deployments run the
//! image as 65532 on a read-only root filesystem.
//!
//! Per function it writes an OCI image layout (`<out>/<function>/`), one archive of it that
//! `podman load` and `docker load` take (`<out>/<function>.tar`) and a CycloneDX SBOM
//! (`<out>/<function>.cdx.json`); `<out>/images.json` ([`Catalog`]) lists them with their
//! digests and sizes for the deploy path and `fabrikam manifests --images`.
//!
//! Two builds of one commit give the same bytes: every date is the commit's
//! (`SOURCE_DATE_EPOCH`), entries are sorted and owned by root, and JSON keys are sorted.

pub mod catalog;
mod elf;
mod layer;
mod oci;
mod sbom;
mod tarball;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub use catalog::{Catalog, CatalogEntry};
use layer::{File, Layer};
use oci::ImageSpec;

/// Where the CA certificates are in every image (rustls-native-certs reads it, and
/// `SSL_CERT_FILE` names it).
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
pub use runtime::contract::{USER_ID, image_name};
const BINARY_DIR: &str = "/usr/local/bin";

/// The image of the queue functions' KEDA scaler (`scaler/`), built like a function's from
/// its binary `scaler`.
pub const SCALER_IMAGE: &str = "scaler";

/// Everything one build needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The workspace root (its `Cargo.lock` and `cargo tree` give the SBOM).
    pub workspace: PathBuf,
    /// The folder holding one static binary per function, named after it.
    pub binaries: PathBuf,
    /// The target triple the binaries were built for.
    pub target: String,
    pub out: PathBuf,
    pub tag: String,
    /// `SOURCE_DATE_EPOCH`: the commit's time, the only date any file or document carries.
    pub source_date_epoch: u64,
    /// `org.opencontainers.image.source` and `.revision`.
    pub source: String,
    pub revision: String,
    /// The CA bundle to ship and its Debian `ca-certificates` version.
    pub ca_bundle: PathBuf,
    pub ca_version: String,
}

/// Why images could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{}: {reason}; build it for x86_64-unknown-linux-musl (scripts/images)", path.display())]
    NotStatic { path: PathBuf, reason: String },
    #[error("SOURCE_DATE_EPOCH {0} is not a date")]
    Date(u64),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Io { what, source }
}

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(io_error(format!("cannot read {}", path.display())))
}

/// Builds the image of every function in `functions` and writes the catalog.
pub fn build(functions: &[&str], options: &Options) -> Result<Catalog, ImageError> {
    let created = chrono::DateTime::from_timestamp(
        i64::try_from(options.source_date_epoch)
            .map_err(|_| ImageError::Date(options.source_date_epoch))?,
        0,
    )
    .ok_or(ImageError::Date(options.source_date_epoch))?
    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ca_bundle = read(&options.ca_bundle)?;
    let base = base_layer(&ca_bundle, options.source_date_epoch)
        .map_err(io_error("cannot build the base layer"))?;
    let lock = std::fs::read_to_string(options.workspace.join("Cargo.lock"))
        .map_err(io_error("cannot read Cargo.lock"))?;
    let checksums = sbom::lock_checksums(&lock);
    std::fs::create_dir_all(&options.out)
        .map_err(io_error(format!("cannot create {}", options.out.display())))?;

    let crates_by_function = sbom::crates_of(&options.workspace, functions, &options.target)
        .map_err(io_error("cannot list the crates of the functions"))?;
    let mut catalog = Catalog::default();
    for function in functions {
        let binary_path = options.binaries.join(function);
        let binary = read(&binary_path)?;
        elf::check_static(&binary).map_err(|reason| ImageError::NotStatic {
            path: binary_path.clone(),
            reason,
        })?;
        let crates = crates_by_function
            .get(*function)
            .cloned()
            .unwrap_or_default();
        let root = crates.iter().find(|c| c.name == *function);
        let version = root.map_or("0.0.0", |c| c.version.as_str());
        let licenses = root
            .and_then(|c| c.license.as_deref())
            .unwrap_or("NOASSERTION");

        let name = image_name(function);
        let entrypoint = format!("{BINARY_DIR}/{function}");
        let app = layer::build(
            &[File::executable(&entrypoint, binary.as_slice())],
            options.source_date_epoch,
        )
        .map_err(io_error(format!("cannot build the layer of {function}")))?;
        let spec = ImageSpec {
            name: name.clone(),
            tag: options.tag.clone(),
            entrypoint: vec![entrypoint.clone()],
            user: format!("{USER_ID}:{USER_ID}"),
            exposed_port: runtime::contract::PORT,
            env: vec![format!("SSL_CERT_FILE={CA_BUNDLE}")],
            labels: labels(&name, version, licenses, &created, options),
            created: created.clone(),
            history: vec![
                "fabrikam images: CA certificates, /etc/passwd and /etc/group (user 65532)"
                    .to_owned(),
                format!("fabrikam images: {entrypoint} (static x86_64 binary)"),
            ],
        };
        let image = oci::image(&spec, vec![base.clone(), app])
            .map_err(io_error(format!("cannot assemble the image of {function}")))?;

        let layout = options.out.join(function);
        oci::write_layout(&image, &layout)
            .map_err(io_error(format!("cannot write {}", layout.display())))?;
        let archive = options.out.join(format!("{function}.tar"));
        oci::write_archive(&image, &archive, options.source_date_epoch)
            .map_err(io_error(format!("cannot write {}", archive.display())))?;
        let facts = sbom::ImageFacts {
            name: &name,
            tag: &options.tag,
            created: &created,
            binary_path: &entrypoint,
            binary_digest: &layer::sha256(&binary),
            ca_version: &options.ca_version,
            ca_digest: &layer::sha256(&ca_bundle),
        };
        let document = sbom::document(&facts, function, &crates, &checksums);
        let sbom_bytes = oci::canonical_json(&document)
            .map_err(io_error(format!("cannot write the SBOM of {function}")))?;
        let sbom_path = options.out.join(format!("{function}.cdx.json"));
        std::fs::write(&sbom_path, &sbom_bytes)
            .map_err(io_error(format!("cannot write {}", sbom_path.display())))?;

        catalog.images.push(CatalogEntry {
            function: (*function).to_owned(),
            name,
            tag: options.tag.clone(),
            digest: image.digest.clone(),
            compressed_size: image.compressed_size(),
            layers: image.layers.iter().map(|l| l.digest.clone()).collect(),
            layout: (*function).to_owned(),
            archive: format!("{function}.tar"),
            sbom: format!("{function}.cdx.json"),
            sbom_digest: layer::sha256(&sbom_bytes),
        });
    }
    catalog
        .write(&options.out.join(catalog::FILE_NAME))
        .map_err(io_error("cannot write the catalog"))?;
    Ok(catalog)
}

/// The layer every image starts with.
fn base_layer(ca_bundle: &[u8], mtime: u64) -> io::Result<Layer> {
    let id = USER_ID;
    layer::build(
        &[
            File::data(CA_BUNDLE, ca_bundle),
            // Names for uid and gid 65532, so tools that look users up find one; no shell
            // and no home to write to.
            File::data(
                "/etc/passwd",
                format!(
                    "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{id}:{id}:nonroot:/nonexistent:/sbin/nologin\n"
                ),
            ),
            File::data("/etc/group", format!("root:x:0:\nnonroot:x:{id}:\n")),
        ],
        mtime,
    )
}

fn labels(
    name: &str,
    version: &str,
    licenses: &str,
    created: &str,
    options: &Options,
) -> BTreeMap<String, String> {
    [
        ("title", name),
        ("version", version),
        ("licenses", licenses),
        ("created", created),
        ("source", options.source.as_str()),
        ("revision", options.revision.as_str()),
        (
            "description",
            "A Fabrikam drone-delivery function on the Rust function host",
        ),
    ]
    .into_iter()
    .map(|(key, value)| (format!("org.opencontainers.image.{key}"), value.to_owned()))
    .collect()
}
