//! [ssr] Files written whole, the one way the app replaces a file: a temporary file in the same
//! folder (so that moving it to its name is a rename), flushed to disk, then moved. A crash or a
//! full disk leaves the old file or the new one, never half of one. On any error, and when the
//! task writing it is dropped, the temporary file is removed (`tempfile::NamedTempFile`'s drop).
//! Each folder names its temporary files in a way its start-up clean-up recognises ([`TempName`]).

use std::{
    fs, io,
    io::Write,
    path::{Path, PathBuf},
};
use tempfile::NamedTempFile;

/// How a folder's temporary files are named: `<prefix><random><suffix>`.
#[derive(Clone, Copy, Debug)]
pub struct TempName {
    pub prefix: &'static str,
    pub suffix: &'static str,
}

/// Who may read the file once it is in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Mode 0600 from the moment it exists (settings with sealed keys, the key file, the token).
    Owner,
    /// What any new file gets (0666 less the umask).
    Default,
}

/// A new, empty temporary file in `dir`.
pub fn temp_in(dir: &Path, name: TempName, access: Access) -> io::Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(name.prefix).suffix(name.suffix);
    #[cfg(unix)]
    if access == Access::Default {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    #[cfg(not(unix))]
    let _ = access;
    builder.tempfile_in(dir)
}

/// Replaces `path` with `bytes`, or leaves it as it was on any error (a full disk included).
pub fn replace(path: &Path, bytes: &[u8], name: TempName, access: Access) -> io::Result<()> {
    let tmp = written(path, bytes, name, access)?;
    install(tmp, path, true)
}

/// Writes `bytes` to `path` only if no file is there: `Ok(false)` when one was (it is left as it
/// is), so that two writers racing for the same name cannot replace each other's file.
pub fn create_new(path: &Path, bytes: &[u8], name: TempName, access: Access) -> io::Result<bool> {
    let tmp = written(path, bytes, name, access)?;
    match install(tmp, path, false) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Moves a temporary file made by [`temp_in`] (and flushed by its writer) to `path`, then
/// flushes the folder so that the move itself is durable. Without `overwrite` an existing file
/// is never replaced: the answer is `AlreadyExists`. The temporary file is gone either way.
pub fn install(tmp: NamedTempFile, path: &Path, overwrite: bool) -> io::Result<()> {
    let placed = if overwrite {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    // A failed move hands the temporary file back; dropping it removes it.
    placed.map_err(|e| e.error)?;
    if let Ok(dir) = fs::File::open(folder_of(path)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// `bytes` in a flushed temporary file beside `path`.
fn written(path: &Path, bytes: &[u8], name: TempName, access: Access) -> io::Result<NamedTempFile> {
    let mut tmp = temp_in(&folder_of(path), name, access)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: TempName = TempName {
        prefix: ".t-",
        suffix: ".tmp",
    };

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "old").unwrap();
        replace(&path, b"new", NAME, Access::Default).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(names(dir.path()), ["f"]);
        // A failed write leaves the old file and no temporary one.
        let missing = dir.path().join("no-such-folder").join("f");
        assert!(replace(&missing, b"x", NAME, Access::Default).is_err());
        assert_eq!(names(dir.path()), ["f"]);
    }

    #[test]
    fn create_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert!(create_new(&path, b"one", NAME, Access::Owner).unwrap());
        assert!(!create_new(&path, b"two", NAME, Access::Owner).unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "one");
        assert_eq!(names(dir.path()), ["f"]);
    }

    #[cfg(unix)]
    #[test]
    fn owner_only_files_are_private_and_others_are_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let private = dir.path().join("private");
        replace(&private, b"k", NAME, Access::Owner).unwrap();
        assert_eq!(mode(&private), 0o600);
        let shared = dir.path().join("shared");
        replace(&shared, b"a", NAME, Access::Default).unwrap();
        let plain = dir.path().join("plain");
        fs::write(&plain, b"a").unwrap();
        assert_eq!(mode(&shared), mode(&plain), "the mode any new file gets");
    }
}
