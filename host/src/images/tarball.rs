//! A tar stream whose every byte is fixed by the files in it: entries in path order, each
//! parent directory written once before its children, owners root (0:0), one mtime for
//! all. Image layers and image archives are both written this way, so that two builds of
//! the same commit give the same bytes.

use std::collections::BTreeMap;
use std::io::{self, Write};

/// A file for the stream: its path relative to the root, contents and mode.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub path: &'a str,
    pub contents: &'a [u8],
    pub mode: u32,
}

/// Writes `entries` to `out`, every entry dated `mtime` (seconds since the epoch), and
/// returns `out` and every path written (directories end in `/`), in order.
pub fn write<'a, W: Write>(
    out: W,
    entries: impl IntoIterator<Item = Entry<'a>>,
    mtime: u64,
) -> io::Result<(W, Vec<String>)> {
    let mut sorted: BTreeMap<String, Option<Entry<'a>>> = BTreeMap::new();
    for entry in entries {
        check(entry.path)?;
        for (end, _) in entry.path.match_indices('/') {
            sorted
                .entry(format!("{}/", &entry.path[..end]))
                .or_insert(None);
        }
        if sorted.insert(entry.path.to_owned(), Some(entry)).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is written twice", entry.path),
            ));
        }
    }
    let mut tar = tar::Builder::new(out);
    for (path, entry) in &sorted {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        match entry {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, path, io::empty())?;
            }
            Some(entry) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(entry.mode);
                header.set_size(entry.contents.len() as u64);
                tar.append_data(&mut header, path, entry.contents)?;
            }
        }
    }
    Ok((tar.into_inner()?, sorted.into_keys().collect()))
}

/// A relative path to a file that stays under the root.
fn check(path: &str) -> io::Result<()> {
    let bad = path.is_empty()
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path:?} is not a relative path to a file"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry(path: &str) -> Entry<'_> {
        Entry {
            path,
            contents: b"x",
            mode: 0o644,
        }
    }

    fn headers(bytes: &[u8]) -> Vec<(String, u32, u64, u64, u64)> {
        tar::Archive::new(bytes)
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                let path = e.path().unwrap().display().to_string();
                let path = if h.entry_type().is_dir() {
                    format!("{path}/")
                } else {
                    path
                };
                (
                    path,
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn entries_come_sorted_after_their_directories_owned_by_root_with_one_date() {
        let (bytes, paths) = write(
            Vec::new(),
            [entry("usr/local/bin/hello"), entry("etc/passwd")],
            7,
        )
        .unwrap();
        let expected = [
            "etc/",
            "etc/passwd",
            "usr/",
            "usr/local/",
            "usr/local/bin/",
            "usr/local/bin/hello",
        ];
        assert_eq!(paths, expected);
        let headers = headers(&bytes);
        let names: Vec<&str> = headers.iter().map(|h| h.0.trim_end_matches('/')).collect();
        assert_eq!(names, expected.map(|p| p.trim_end_matches('/')));
        for (path, mode, uid, gid, mtime) in headers {
            assert_eq!((uid, gid, mtime), (0, 0, 7), "{path}");
            assert_eq!(
                mode,
                if path.ends_with('/') { 0o755 } else { 0o644 },
                "{path}"
            );
        }
    }

    #[test]
    fn the_order_given_does_not_change_a_byte() {
        let a = write(Vec::new(), [entry("b/x"), entry("a")], 1).unwrap().0;
        let b = write(Vec::new(), [entry("a"), entry("b/x")], 1).unwrap().0;
        assert_eq!(a, b);
    }

    #[test]
    fn paths_that_leave_the_root_or_repeat_are_refused() {
        for path in ["", "/etc/passwd", "etc/", "etc/../x", "a//b", "./a"] {
            assert!(write(Vec::new(), [entry(path)], 0).is_err(), "{path:?}");
        }
        let e = write(Vec::new(), [entry("a"), entry("a")], 0).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
