//! [ssr] Files only the server's user may read (settings with sealed keys, the key file, the
//! access token), written whole through [`crate::atomic_file`] with mode 0600 from the moment they
//! exist: a crash or a full disk leaves the old file or the new one, never half of one, and never
//! a moment where the file is readable by others.

use crate::atomic_file::{self, Access, TempName};
use std::{
    io,
    path::{Path, PathBuf},
};

/// Hidden, and ending in `.tmp` so that start-up recognises what a crash left behind.
const TEMP: TempName = TempName {
    prefix: ".",
    suffix: ".tmp",
};

/// Whether a name beside a private file is one of its temporary files: only a crash leaves one
/// behind, and start-up removes it.
pub fn is_temp_name(name: &str) -> bool {
    name.ends_with(".tmp")
}

/// Replaces `path` with `bytes`. On any error, a full disk included, `path` is as it was.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    atomic_file::replace(path, bytes, TEMP, Access::Owner)
}

/// Writes `bytes` to `path` unless a file appeared there meanwhile: `Ok(false)` then, and that
/// file is left as it is.
pub fn create_new(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    atomic_file::create_new(path, bytes, TEMP, Access::Owner)
}

/// A backup name beside `path` that does not exist yet: `app.json.bak`, then `app.json.bak.1`, ...
pub fn unused_backup_name(path: &Path) -> PathBuf {
    let base = format!("{}.bak", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn replaces_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        fs::write(&path, "old").unwrap();
        replace(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // A failed write leaves the old file.
        let missing = dir.path().join("no-such-folder").join("f.json");
        assert!(replace(&missing, b"x").is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn temporary_names_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = atomic_file::temp_in(dir.path(), TEMP, Access::Owner).unwrap();
        let name = tmp.path().file_name().unwrap().to_str().unwrap();
        assert!(is_temp_name(name), "{name}");
    }
}
