//! The directory the Secrets Store CSI driver mounts: one file per Key Vault object, named
//! after the object (or its alias), such as `/mnt/secrets-store/Redis-AccessKey`.
//!
//! The driver rotates by writing a new timestamped directory and swapping the `..data`
//! symlink to it in one rename, the way Kubernetes' atomic writer does; each object file is
//! a symlink through `..data`. Opening the file by its name therefore always sees one
//! complete version, old or new, and re-reading on a timer is all it takes to follow it.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::Secret;

/// Secrets read from a mounted directory.
#[derive(Debug, Clone)]
pub struct DirectorySource {
    dir: PathBuf,
}

impl DirectorySource {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The value of the object `name`; `Ok(None)` when there is no such file.
    pub async fn read(&self, name: &str) -> Result<Option<Secret>, String> {
        if !is_object_name(name) {
            return Err(format!(
                "{name:?} is not a file name (letters, digits, '-', '_' and '.', not starting with '.')"
            ));
        }
        let path = self.dir.join(name);
        // A few small files on a tmpfs, read on a timer: off the async workers anyway, so a
        // stalled mount never stalls request handling.
        let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(path)).await;
        match read {
            Ok(Ok(contents)) => {
                // Editors and `kubectl create secret --from-file` leave a final newline that
                // is not part of the value.
                let value = contents.trim_end_matches(['\r', '\n']);
                if value.is_empty() {
                    Err("the file is empty".into())
                } else {
                    Ok(Some(Secret::new(value)))
                }
            }
            Ok(Err(e)) if e.kind() == ErrorKind::NotFound => Ok(None),
            Ok(Err(e)) => Err(format!("cannot read the file: {e}")),
            Err(e) => Err(format!("the read was cancelled: {e}")),
        }
    }
}

/// A name that stays inside the directory: one path component, no hidden files (the
/// driver's own `..data` and timestamped directories start with dots).
fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::secrets::MountedSecrets;

    #[tokio::test]
    async fn reads_an_object_through_the_atomic_layout_and_follows_a_swap() {
        let mount = MountedSecrets::new(&[("Redis-AccessKey", "first\n")]);
        let source = DirectorySource::new(mount.dir());
        let first = source.read("Redis-AccessKey").await.unwrap().unwrap();
        assert_eq!(first.expose(), "first");
        mount.rotate(&[("Redis-AccessKey", "second")]);
        let second = source.read("Redis-AccessKey").await.unwrap().unwrap();
        assert_eq!(second.expose(), "second");
    }

    #[tokio::test]
    async fn a_missing_object_is_none_and_an_empty_one_an_error() {
        let mount = MountedSecrets::new(&[("Empty", "\n")]);
        let source = DirectorySource::new(mount.dir());
        assert_eq!(source.read("Queue--Key").await, Ok(None));
        assert_eq!(source.read("Empty").await, Err("the file is empty".into()));
    }

    #[tokio::test]
    async fn names_that_would_leave_the_directory_are_refused() {
        let source = DirectorySource::new("/mnt/secrets-store");
        for name in ["../etc/passwd", "..data", "a/b", "", ".hidden"] {
            assert!(source.read(name).await.is_err(), "{name:?}");
        }
    }
}
