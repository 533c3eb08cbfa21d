//! [ssr] Files only the server's user may read (settings with sealed keys, the key file, the
//! access token), written whole: a crash or a full disk leaves the old file or the new one, never
//! half of one, and never a moment where the file is readable by others.

use std::{fs, io, io::Write, path::Path};

/// Writes `bytes` to a new file at `tmp` with mode 0600 and flushes it to disk.
pub fn write_new(tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(tmp)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Whether a name beside a private file is one of its temporary files (`tmp_ext` always ends in
/// `tmp`): only a crash leaves one behind, and start-up removes it.
pub fn is_temp_name(name: &str) -> bool {
    name.ends_with(".tmp")
}

/// Replaces `path` with `bytes`: a private temporary file beside it (`tmp_ext`, ending in `tmp`,
/// names it), then a rename over `path`, then the folder flushed so that the rename itself is
/// durable. On any error, a full disk included, the temporary file is removed and `path` is as
/// it was.
pub fn replace(path: &Path, tmp_ext: &str, bytes: &[u8]) -> io::Result<()> {
    debug_assert!(
        tmp_ext.ends_with("tmp"),
        "start-up would not know {tmp_ext}"
    );
    let tmp = path.with_extension(tmp_ext);
    let result = write_new(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    match result {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                if let Ok(d) = fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        fs::write(&path, "old").unwrap();
        replace(&path, "json.tmp", b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert!(!dir.path().join("f.json.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // A failed write leaves the old file and no temporary one.
        let missing = dir.path().join("no-such-folder").join("f.json");
        assert!(replace(&missing, "json.tmp", b"x").is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
    }
}
