//! One image layer: a reproducible tar stream ([`super::tarball`]) of the files, compressed
//! with gzip. The gzip header carries no time and no file name, so only the files decide
//! the digest.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};

use super::tarball::{self, Entry};

/// A file to put in a layer, at an absolute path inside the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub contents: Vec<u8>,
    pub executable: bool,
}

impl File {
    pub fn data(path: &str, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.to_owned(),
            contents: contents.into(),
            executable: false,
        }
    }

    pub fn executable(path: &str, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            executable: true,
            ..Self::data(path, contents)
        }
    }
}

/// A finished layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The gzip-compressed tar stream, as stored in a registry.
    pub compressed: Vec<u8>,
    /// `sha256:<hex>` of `compressed`: the blob's digest.
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar stream: the config's `diff_id`.
    pub diff_id: String,
    /// Every path in the layer, absolute, directories ending in `/`, in tar order.
    pub paths: Vec<String>,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Builds a layer of `files`, every entry dated `mtime` (seconds since the epoch). Files
/// are root's and read-only to everyone else: 0644, or 0755 when executable.
pub fn build(files: &[File], mtime: u64) -> io::Result<Layer> {
    let mut entries = Vec::with_capacity(files.len());
    for file in files {
        let path = file.path.strip_prefix('/').ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{:?} is not an absolute path", file.path),
            )
        })?;
        entries.push(Entry {
            path,
            contents: &file.contents,
            mode: if file.executable { 0o755 } else { 0o644 },
        });
    }
    let (uncompressed, paths) = tarball::write(Vec::new(), entries, mtime)?;
    let mut gzip = GzEncoder::new(Vec::new(), Compression::best());
    gzip.write_all(&uncompressed)?;
    let compressed = gzip.finish()?;
    Ok(Layer {
        digest: sha256(&compressed),
        diff_id: sha256(&uncompressed),
        compressed,
        paths: paths.into_iter().map(|p| format!("/{p}")).collect(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read;

    use super::*;

    #[test]
    fn the_layer_is_the_gzip_of_a_tar_whose_digest_is_the_diff_id() {
        let files = [
            File::executable("/usr/local/bin/hello", "ELF"),
            File::data("/etc/passwd", "nonroot:x:65532:65532::/:/sbin/nologin\n"),
        ];
        let layer = build(&files, 5).unwrap();
        assert_eq!(layer.digest, sha256(&layer.compressed));
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(layer.compressed.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(sha256(&raw), layer.diff_id);
        let modes: Vec<(String, u32)> = tar::Archive::new(raw.as_slice())
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert!(
            modes.contains(&("usr/local/bin/hello".to_owned(), 0o755)),
            "{modes:?}"
        );
        assert!(
            modes.contains(&("etc/passwd".to_owned(), 0o644)),
            "{modes:?}"
        );
        assert_eq!(layer.paths[0], "/etc/");
    }

    #[test]
    fn the_same_files_give_the_same_digest_and_another_date_another() {
        let files = [File::data("/a", "x")];
        assert_eq!(build(&files, 1).unwrap(), build(&files, 1).unwrap());
        assert_ne!(
            build(&files, 1).unwrap().digest,
            build(&files, 2).unwrap().digest
        );
    }

    #[test]
    fn a_relative_path_is_refused() {
        assert!(build(&[File::data("etc/passwd", "")], 0).is_err());
    }
}
