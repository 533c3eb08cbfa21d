//! Safe file names for uploads, and the URL of a file in the avatars folder.

use super::{extension, AvatarError, EXTENSIONS};

/// The longest name kept (in characters), extension included.
const MAX_CHARS: usize = 100;

/// Turns the name a browser sent into a safe name in the avatars folder: percent escapes are
/// decoded first (so `%2e%2e%2f` is seen as `../`), folders are dropped, leading dots (hidden
/// files) and characters that are awkward in file names are removed. The extension must be one
/// of .vrm/.glb/.gltf (checked here, before the body is read).
pub fn sanitize_upload_name(raw: &str) -> Result<String, AvatarError> {
    let decoded = crate::server::files::percent_decode(raw).unwrap_or_else(|()| raw.to_string());
    let last = decoded.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '(' | ')' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches(['.', ' ']);
    let Some(ext) = extension(cleaned) else {
        return Err(if cleaned.is_empty() {
            AvatarError::BadName("the file has no name".into())
        } else {
            AvatarError::BadExtension(cleaned.to_string())
        });
    };
    if !EXTENSIONS.contains(&ext.as_str()) {
        return Err(AvatarError::BadExtension(format!(".{ext}")));
    }
    let stem_len = cleaned.chars().count() - ext.chars().count() - 1;
    let keep = stem_len.min(MAX_CHARS - ext.len() - 1);
    let stem: String = cleaned.chars().take(keep).collect();
    let stem = stem.trim_end_matches([' ', '.']);
    if stem.is_empty() {
        return Err(AvatarError::BadName("the file has no name".into()));
    }
    Ok(format!("{stem}.{ext}"))
}

/// `/files/avatars/<name>` with the name percent-encoded.
pub fn url_for(name: &str) -> String {
    let mut out = String::from("/files/avatars/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts_are_dropped() {
        for raw in [
            "../evil.vrm",
            "..\\evil.vrm",
            "%2e%2e%2fevil.vrm",
            "%2E%2E%2Fevil.vrm",
            "/etc/evil.vrm",
            "a/b/../evil.vrm",
        ] {
            assert_eq!(sanitize_upload_name(raw).unwrap(), "evil.vrm", "{raw}");
        }
    }

    #[test]
    fn hidden_and_odd_names_are_cleaned() {
        assert_eq!(sanitize_upload_name(".hidden.glb").unwrap(), "hidden.glb");
        assert_eq!(
            sanitize_upload_name("My Girl (v2).VRM").unwrap(),
            "My Girl (v2).vrm"
        );
        assert_eq!(sanitize_upload_name("a;b|c.gltf").unwrap(), "a_b_c.gltf");
        assert_eq!(sanitize_upload_name("ä.vrm").unwrap(), "ä.vrm");
        let long = format!("{}.vrm", "x".repeat(300));
        assert_eq!(sanitize_upload_name(&long).unwrap().chars().count(), 100);
    }

    #[test]
    fn bad_extensions_and_empty_names_are_refused() {
        assert!(matches!(
            sanitize_upload_name("model.fbx"),
            Err(AvatarError::BadExtension(_))
        ));
        assert!(matches!(
            sanitize_upload_name("vrm"),
            Err(AvatarError::BadExtension(_))
        ));
        assert!(sanitize_upload_name("").is_err());
        assert!(sanitize_upload_name("../").is_err());
        assert!(sanitize_upload_name("...vrm").is_err());
        assert!(sanitize_upload_name(".vrm").is_err());
    }

    #[test]
    fn urls_are_encoded() {
        assert_eq!(url_for("a b.vrm"), "/files/avatars/a%20b.vrm");
        assert_eq!(url_for("ä.vrm"), "/files/avatars/%C3%A4.vrm");
    }
}
