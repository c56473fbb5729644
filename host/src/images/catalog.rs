//! `images.json`: what `fabrikam images` built, one entry per function. The deploy path
//! pushes what it lists, and `fabrikam manifests --images` renders each Deployment's image
//! by the digest it records.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The catalog's file name in the output folder.
pub const FILE_NAME: &str = "images.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Catalog {
    pub images: Vec<CatalogEntry>,
}

/// One function's image. Paths are relative to the catalog's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CatalogEntry {
    pub function: String,
    /// The repository name, `fabrikam-<function>`, without a registry.
    pub name: String,
    pub tag: String,
    /// The manifest's `sha256:<hex>`, which names the image in any registry.
    pub digest: String,
    /// The bytes a pull downloads: layers, config and manifest.
    pub compressed_size: u64,
    /// The layers' digests, base first.
    pub layers: Vec<String>,
    /// The OCI image layout folder.
    pub layout: String,
    /// The archive `podman load` and `docker load` take.
    pub archive: String,
    /// The CycloneDX SBOM and its digest.
    pub sbom: String,
    pub sbom_digest: String,
}

impl Catalog {
    pub fn read(path: &Path) -> io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        text.push('\n');
        std::fs::write(path, text)
    }

    pub fn get(&self, function: &str) -> Option<&CatalogEntry> {
        self.images.iter().find(|i| i.function == function)
    }
}
