//! An image's config and manifest (OCI image spec, through `oci-spec`), and the two ways it
//! is written: an OCI image layout directory, and one tar archive holding that layout plus
//! Docker's `manifest.json`, which both `podman load` and `docker load` read (it is what
//! `docker save` writes since Docker 25).
//!
//! Every JSON document is written with its object keys sorted: `oci-spec` keeps labels and
//! annotations in `HashMap`s, whose order changes from run to run, and a digest covers the
//! bytes.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, HistoryBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};
use serde::Serialize;
use serde_json::{Map, Value};

use super::layer::{Layer, sha256};
use super::tarball::{self, Entry};

/// The OCI annotation that names a manifest's tag inside a layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What goes into an image besides its layers.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The repository name, such as `fabrikam-ingestion`.
    pub name: String,
    pub tag: String,
    pub entrypoint: Vec<String>,
    /// `uid:gid`.
    pub user: String,
    pub exposed_port: u16,
    pub env: Vec<String>,
    /// `org.opencontainers.image.*` labels; also the manifest's annotations.
    pub labels: BTreeMap<String, String>,
    /// RFC 3339: the source date, never the build's own time.
    pub created: String,
    /// Per layer, what made it (the config's history).
    pub history: Vec<String>,
}

/// A finished image: its blobs and the digest that names it.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub tag: String,
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    /// `sha256:<hex>` of `manifest`: what a registry and a Deployment refer to.
    pub digest: String,
}

impl Image {
    /// The bytes a pull downloads: every layer, the config and the manifest.
    pub fn compressed_size(&self) -> u64 {
        let layers: usize = self.layers.iter().map(|l| l.compressed.len()).sum();
        (layers + self.config.len() + self.manifest.len()) as u64
    }

    /// Every blob by digest, each once, in digest order.
    fn blobs(&self) -> BTreeMap<&str, &[u8]> {
        let mut blobs: BTreeMap<&str, &[u8]> = self
            .layers
            .iter()
            .map(|l| (l.digest.as_str(), l.compressed.as_slice()))
            .collect();
        blobs.insert(&self.config_digest, &self.config);
        blobs.insert(&self.digest, &self.manifest);
        blobs
    }
}

/// Assembles the config and manifest of `layers` (base first).
pub fn image(spec: &ImageSpec, layers: Vec<Layer>) -> io::Result<Image> {
    if spec.history.len() != layers.len() {
        return Err(io::Error::other("one history entry per layer"));
    }
    let labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    let config = ConfigBuilder::default()
        .user(spec.user.clone())
        .exposed_ports(vec![format!("{}/tcp", spec.exposed_port)])
        .env(spec.env.clone())
        .entrypoint(spec.entrypoint.clone())
        .labels(labels.clone())
        .build()
        .map_err(oci_error)?;
    let history = spec
        .history
        .iter()
        .map(|created_by| {
            HistoryBuilder::default()
                .created(spec.created.clone())
                .created_by(created_by.clone())
                .build()
                .map_err(oci_error)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>())
        .build()
        .map_err(oci_error)?;
    let configuration = ImageConfigurationBuilder::default()
        .created(spec.created.clone())
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(config)
        .rootfs(rootfs)
        .history(history)
        .build()
        .map_err(oci_error)?;
    let config = canonical_json(&configuration)?;
    let config_digest = sha256(&config);

    let layer_descriptors = layers
        .iter()
        .map(|l| {
            descriptor(
                MediaType::ImageLayerGzip,
                &l.digest,
                l.compressed.len(),
                None,
            )
        })
        .collect::<io::Result<Vec<_>>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            &config_digest,
            config.len(),
            None,
        )?)
        .layers(layer_descriptors)
        .annotations(labels)
        .build()
        .map_err(oci_error)?;
    let manifest = canonical_json(&manifest)?;
    Ok(Image {
        name: spec.name.clone(),
        tag: spec.tag.clone(),
        layers,
        config,
        config_digest,
        digest: sha256(&manifest),
        manifest,
    })
}

fn descriptor(
    media_type: MediaType,
    digest: &str,
    size: usize,
    annotations: Option<HashMap<String, String>>,
) -> io::Result<Descriptor> {
    let mut builder = DescriptorBuilder::default()
        .media_type(media_type)
        .digest(oci_spec::image::Digest::try_from(digest).map_err(oci_error)?)
        .size(size as u64);
    if let Some(annotations) = annotations {
        builder = builder.annotations(annotations);
    }
    builder.build().map_err(oci_error)
}

/// The layout's `index.json`: the one manifest, tagged.
fn layout_index(image: &Image) -> io::Result<Vec<u8>> {
    let annotations = HashMap::from([
        (REF_NAME.to_owned(), image.tag.clone()),
        // containerd and Docker read the full reference from here.
        (
            "io.containerd.image.name".to_owned(),
            format!("{}:{}", image.name, image.tag),
        ),
    ]);
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![descriptor(
            MediaType::ImageManifest,
            &image.digest,
            image.manifest.len(),
            Some(annotations),
        )?])
        .build()
        .map_err(oci_error)?;
    canonical_json(&index)
}

/// Docker's `manifest.json`, which `docker load` reads from the same archive.
fn docker_manifest(image: &Image) -> io::Result<Vec<u8>> {
    let blob = |digest: &str| format!("blobs/{}", digest.replacen(':', "/", 1));
    let manifest = serde_json::json!([{
        "Config": blob(&image.config_digest),
        "RepoTags": [format!("{}:{}", image.name, image.tag)],
        "Layers": image.layers.iter().map(|l| blob(&l.digest)).collect::<Vec<_>>(),
    }]);
    canonical_json(&manifest)
}

/// The files of the OCI image layout, by relative path, in path order.
fn layout_files(image: &Image) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    files.insert(
        "oci-layout".to_owned(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    files.insert("index.json".to_owned(), layout_index(image)?);
    for (digest, bytes) in image.blobs() {
        files.insert(
            format!("blobs/{}", digest.replacen(':', "/", 1)),
            bytes.to_vec(),
        );
    }
    Ok(files)
}

/// Writes the image as an OCI image layout in `dir`, replacing whatever was there.
pub fn write_layout(image: &Image, dir: &Path) -> io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    for (path, bytes) in layout_files(image)? {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

/// Writes the layout plus Docker's `manifest.json` as one tar archive, dated `mtime`.
pub fn write_archive(image: &Image, path: &Path, mtime: u64) -> io::Result<()> {
    let mut files = layout_files(image)?;
    files.insert("manifest.json".to_owned(), docker_manifest(image)?);
    let entries = files.iter().map(|(path, contents)| Entry {
        path,
        contents,
        mode: 0o644,
    });
    let out = io::BufWriter::new(std::fs::File::create(path)?);
    let (out, _) = tarball::write(out, entries, mtime)?;
    out.into_inner().map_err(io::IntoInnerError::into_error)?;
    Ok(())
}

/// `value` as compact JSON with every object's keys sorted.
pub fn canonical_json(value: &impl Serialize) -> io::Result<Vec<u8>> {
    let value = serde_json::to_value(value).map_err(oci_error)?;
    serde_json::to_vec(&sorted(value)).map_err(oci_error)
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(entries.into_iter().collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn oci_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::images::layer::{self, File};

    fn spec() -> ImageSpec {
        ImageSpec {
            name: "fabrikam-hello".to_owned(),
            tag: "0.1.0-abc".to_owned(),
            entrypoint: vec!["/usr/local/bin/hello".to_owned()],
            user: "65532:65532".to_owned(),
            exposed_port: 8080,
            env: vec!["SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt".to_owned()],
            labels: BTreeMap::from([
                (
                    "org.opencontainers.image.title".to_owned(),
                    "fabrikam-hello".to_owned(),
                ),
                (
                    "org.opencontainers.image.revision".to_owned(),
                    "abc".to_owned(),
                ),
                (
                    "org.opencontainers.image.licenses".to_owned(),
                    "MIT".to_owned(),
                ),
            ]),
            created: "2026-11-30T00:00:00Z".to_owned(),
            history: vec!["binary".to_owned()],
        }
    }

    fn built() -> Image {
        let layer = layer::build(&[File::executable("/usr/local/bin/hello", "x")], 1).unwrap();
        image(&spec(), vec![layer]).unwrap()
    }

    #[test]
    fn the_config_says_who_runs_what_and_carries_the_labels() {
        let image = built();
        let config: Value = serde_json::from_slice(&image.config).unwrap();
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/hello");
        assert_eq!(
            config["config"]["ExposedPorts"],
            serde_json::json!({"8080/tcp": {}})
        );
        assert_eq!(
            config["config"]["Labels"]["org.opencontainers.image.revision"],
            "abc"
        );
        assert_eq!(config["created"], "2026-11-30T00:00:00Z");
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            image.layers[0].diff_id.as_str()
        );
        let manifest: Value = serde_json::from_slice(&image.manifest).unwrap();
        assert_eq!(manifest["config"]["digest"], image.config_digest.as_str());
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(image.digest, sha256(&image.manifest));
    }

    #[test]
    fn the_same_inputs_give_the_same_digest() {
        let digests: Vec<String> = (0..5).map(|_| built().digest).collect();
        assert!(digests.iter().all(|d| d == &digests[0]), "{digests:?}");
    }

    #[test]
    fn the_layout_and_the_archive_hold_every_blob_under_its_digest() {
        let image = built();
        let dir = std::env::temp_dir().join(format!("oci-layout-{}", std::process::id()));
        write_layout(&image, &dir).unwrap();
        for (digest, bytes) in image.blobs() {
            let path = dir.join("blobs").join(digest.replacen(':', "/", 1));
            assert_eq!(std::fs::read(path).unwrap(), bytes);
        }
        let index: Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], image.digest.as_str());
        assert_eq!(index["manifests"][0]["annotations"][REF_NAME], "0.1.0-abc");

        let archive = dir.with_extension("tar");
        write_archive(&image, &archive, 1).unwrap();
        let first = std::fs::read(&archive).unwrap();
        let mut names = Vec::new();
        for entry in tar::Archive::new(first.as_slice()).entries().unwrap() {
            names.push(entry.unwrap().path().unwrap().display().to_string());
        }
        assert!(names.contains(&"manifest.json".to_owned()), "{names:?}");
        assert!(names.contains(&"index.json".to_owned()), "{names:?}");
        write_archive(&image, &archive, 1).unwrap();
        assert_eq!(std::fs::read(&archive).unwrap(), first);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_file(&archive).unwrap();
    }

    #[test]
    fn keys_are_sorted_at_every_depth() {
        let value = serde_json::json!({"b": {"z": 1, "a": [{"y": 1, "x": 2}]}, "a": 0});
        let text = String::from_utf8(canonical_json(&value).unwrap()).unwrap();
        assert_eq!(text, r#"{"a":0,"b":{"a":[{"x":2,"y":1}],"z":1}}"#);
    }
}
