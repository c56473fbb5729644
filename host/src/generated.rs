//! A folder of generated files (`keda/<profile>/`, `docs/openapi/`): what differs between
//! it and what generation gives, and writing it. A file in the folder with the extension of
//! a generated one, but which generation no longer gives, is stray: reported, and removed on
//! writing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// File name (in the folder) -> contents.
pub type Files = BTreeMap<String, String>;

/// What differs between `files` and the folder `dir`: files missing, changed or extra.
pub fn differences(files: &Files, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (name, text) in files {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(on_disk) if &on_disk == text => {}
            Ok(_) => out.push(format!("{} differs", dir.join(name).display())),
            Err(_) => out.push(format!("{} is missing", dir.join(name).display())),
        }
    }
    for path in stray(files, dir) {
        out.push(format!("{} is not generated", path.display()));
    }
    out.sort();
    out
}

/// Writes `files` into `dir`, removing the files generation no longer gives.
pub fn write(files: &Files, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for path in stray(files, dir) {
        std::fs::remove_file(path)?;
    }
    for (name, text) in files {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

fn extension(name: &str) -> Option<&str> {
    Path::new(name).extension().and_then(|e| e.to_str())
}

/// The files in `dir` with a generated file's extension that generation no longer gives.
fn stray(files: &Files, dir: &Path) -> Vec<PathBuf> {
    let extensions: BTreeSet<&str> = files.keys().filter_map(|n| extension(n)).collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            extension(&name).is_some_and(|e| extensions.contains(e)) && !files.contains_key(&name)
        })
        .map(|entry| entry.path())
        .collect()
}
