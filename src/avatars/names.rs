//! Safe file names for uploads, and the URL of a file in the avatars folder.

use super::{extension, AvatarError, EXTENSIONS};

/// The longest name kept (in characters), extension included.
const MAX_CHARS: usize = 100;
/// The longest name kept in bytes, extension included: what ext4 and most file systems allow,
/// and what `config::is_plain_file_name` accepts for `avatar.active`. A hundred CJK characters
/// are 300 bytes.
const MAX_BYTES: usize = 255;

/// Turns the name a browser sent into a safe name in the avatars folder: percent escapes are
/// decoded first (so `%2e%2e%2f` is seen as `../`), folders are dropped, leading dots (hidden
/// files) and characters that are awkward in file names are removed. The extension must be one
/// of .vrm/.glb/.gltf (checked here, before the body is read).
pub fn sanitize_upload_name(raw: &str) -> Result<String, AvatarError> {
    let decoded = decode(raw);
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
    let room = MAX_BYTES - ext.len() - 1;
    let mut stem = String::new();
    for c in cleaned.chars().take(keep) {
        if stem.len() + c.len_utf8() > room {
            break;
        }
        stem.push(c);
    }
    let stem = stem.trim_end_matches([' ', '.']);
    if stem.is_empty() {
        return Err(AvatarError::BadName("the file has no name".into()));
    }
    Ok(format!("{stem}.{ext}"))
}

/// `raw` with its percent escapes decoded, or as sent when they do not decode to UTF-8.
fn decode(raw: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .unwrap_or(std::borrow::Cow::Borrowed(raw))
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
        // 96 CJK characters are 288 bytes: more than a file name may have.
        let cjk = sanitize_upload_name(&format!("{}.vrm", "日".repeat(120))).unwrap();
        assert_eq!(cjk, format!("{}.vrm", "日".repeat(83)));
        assert!(cjk.len() <= 255 && crate::config::is_plain_file_name(&cjk));
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

    /// What a browser or a hand-made request may send as a file name.
    fn raw_name() -> impl proptest::strategy::Strategy<Value = String> {
        use crate::testing::re;
        use proptest::prelude::*;
        let folder = prop::sample::select(vec![
            "",
            "",
            "../",
            "..\\",
            "/etc/",
            "C:\\Users\\",
            "%2e%2e%2f",
            "%2E%2E%5C",
            "./",
            ".",
            "a/b/../",
            "%",
            "%zz",
            "%00",
            "%ff",
        ]);
        let stem = prop_oneof![
            re("[a-zA-Z0-9 ._()+-]{0,20}"),
            // Long multi-byte names: CJK (3 bytes), mathematical letters (4 bytes), accents.
            re("[日本語𝐀é ]{60,140}"),
            re("[a-z]{90,130}"),
            // Everything `sanitize_upload_name` has a rule for.
            prop::collection::vec(
                prop::sample::select(vec![
                    ".", "..", " ", "/", "\\", "%2f", "%2e", "%20", "\0", "\n", "\r", "\u{7f}",
                    "\u{202e}", ":", "*", "?", "\"", "<", ">", "|", "~", "$", "x", "Ä", "😀",
                    "\u{200B}", "\t",
                ]),
                0..12,
            )
            .prop_map(|parts| parts.concat()),
            crate::testing::any_text(),
        ];
        let ext = prop::sample::select(vec![
            ".vrm", ".VRM", ".glb", ".GLB", ".gltf", ".Gltf", ".fbx", "", ".vrm.exe", ". vrm",
            ".vrm ", ".vrm.", "vrm", ".",
        ]);
        (folder, stem, ext).prop_map(|(f, s, e)| format!("{f}{s}{e}"))
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::config())]

        /// An accepted name is a plain file name that stays inside the avatars folder, keeps
        /// the (lower-cased) extension the sent name ended with, fits every file system, and
        /// comes out unchanged when cleaned again.
        #[test]
        fn any_accepted_name_is_plain_inside_the_folder_and_stable(raw in raw_name()) {
            use proptest::prop_assert;
            use proptest::prop_assert_eq;
            use std::path::{Component, Path};
            let Ok(name) = sanitize_upload_name(&raw) else {
                return Ok(());
            };
            prop_assert!(crate::config::is_plain_file_name(&name), "{raw:?} -> {name:?}");
            prop_assert!(!name.contains(['/', '\\', '%']) && !name.starts_with(['.', ' ']));
            prop_assert!(!name.chars().any(char::is_control), "{name:?}");
            let parts: Vec<Component> = Path::new(&name).components().collect();
            prop_assert!(matches!(parts.as_slice(), [Component::Normal(_)]), "{name:?}");
            prop_assert!(name.chars().count() <= MAX_CHARS && name.len() <= MAX_BYTES);

            let ext = extension(&name).unwrap_or_default();
            prop_assert!(EXTENSIONS.contains(&ext.as_str()), "{name:?}");
            prop_assert!(name.ends_with(&format!(".{ext}")), "the extension is lower case");
            // Trailing spaces are trimmed before the extension is read.
            let sent = decode(&raw);
            let sent = sent.trim_end_matches(' ').to_lowercase();
            prop_assert!(sent.ends_with(&format!(".{ext}")), "{raw:?} -> {name:?}");

            prop_assert_eq!(sanitize_upload_name(&name).ok(), Some(name));
        }

        /// A name that does not end in .vrm, .glb or .gltf (in any case) is refused.
        #[test]
        fn other_extensions_are_refused(raw in raw_name()) {
            let sent = decode(&raw);
            let sent = sent.trim_end_matches(' ').to_lowercase();
            if !EXTENSIONS.iter().any(|e| sent.ends_with(&format!(".{e}"))) {
                proptest::prop_assert!(sanitize_upload_name(&raw).is_err(), "{raw:?}");
            }
        }
    }

    #[test]
    fn urls_are_encoded() {
        assert_eq!(url_for("a b.vrm"), "/files/avatars/a%20b.vrm");
        assert_eq!(url_for("ä.vrm"), "/files/avatars/%C3%A4.vrm");
    }
}
