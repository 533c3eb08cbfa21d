//! What a model file is. The `gltf` crate reads the binary container (magic, version, declared
//! length, chunks) and the JSON schema; the VRM extensions are looked up in the same JSON.

use super::AvatarError;
use crate::shared::avatars::AvatarKind;
use serde::Deserialize;
use std::{collections::BTreeMap, io::Read, path::Path};

/// The root keys the VRM check needs; everything else in the document is ignored here.
#[derive(Deserialize)]
struct ExtensionProbe {
    #[serde(default)]
    extensions: BTreeMap<String, serde::de::IgnoredAny>,
}

/// Validates a whole file given its extension (`vrm`, `glb`, `gltf`) and says what it is.
pub fn inspect(ext: &str, bytes: &[u8]) -> Result<AvatarKind, AvatarError> {
    match ext {
        "gltf" => {
            if bytes.starts_with(b"glTF") {
                return Err(AvatarError::NotGltf(
                    "a .gltf file must be JSON, but this one is binary (rename it to .glb)".into(),
                ));
            }
            check_document(bytes)?;
            Ok(AvatarKind::Gltf)
        }
        "glb" | "vrm" => {
            if !bytes.starts_with(b"glTF") {
                return Err(AvatarError::NotGltf(
                    "it does not start with the binary glTF magic `glTF`".into(),
                ));
            }
            let glb = gltf::binary::Glb::from_slice(bytes).map_err(|e| {
                AvatarError::NotGltf(format!("the binary container is damaged ({e})"))
            })?;
            let kind = kind_of_document(&glb.json)?;
            if ext == "vrm" && kind == AvatarKind::Glb {
                return Err(AvatarError::NotVrm);
            }
            Ok(kind)
        }
        other => Err(AvatarError::BadExtension(format!(".{other}"))),
    }
}

/// The kind of a file already in the folder, reading only its header and JSON chunk (the
/// binary payload of a large model is not read).
pub fn kind_of_file(path: &Path, ext: &str) -> Option<AvatarKind> {
    let mut file = std::fs::File::open(path).ok()?;
    if ext == "gltf" {
        let mut json = Vec::new();
        file.take(64 << 20).read_to_end(&mut json).ok()?;
        check_document(&json).ok()?;
        return Some(AvatarKind::Gltf);
    }
    let mut head = [0u8; 20];
    file.read_exact(&mut head).ok()?;
    if &head[0..4] != b"glTF" || &head[16..20] != b"JSON" {
        return None;
    }
    let len = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as u64;
    let mut json = Vec::new();
    file.take(len.min(64 << 20)).read_to_end(&mut json).ok()?;
    kind_of_document(&json).ok()
}

/// Parses the glTF JSON (schema and `asset.version`) and returns the root extension names used.
fn check_document(json: &[u8]) -> Result<Vec<String>, AvatarError> {
    let root: gltf::json::Root = gltf::json::deserialize::from_slice(json)
        .map_err(|e| AvatarError::NotGltf(format!("its glTF JSON does not parse ({e})")))?;
    if !root.asset.version.starts_with("2.") {
        return Err(AvatarError::NotGltf(format!(
            "it is glTF version {:?}; only glTF 2.x is supported",
            root.asset.version
        )));
    }
    let probe: ExtensionProbe = serde_json::from_slice(json)
        .map_err(|e| AvatarError::NotGltf(format!("its JSON does not parse ({e})")))?;
    Ok(probe.extensions.into_keys().collect())
}

fn kind_of_document(json: &[u8]) -> Result<AvatarKind, AvatarError> {
    let extensions = check_document(json)?;
    let has = |name: &str| extensions.iter().any(|e| e == name);
    Ok(if has("VRMC_vrm") {
        AvatarKind::Vrm1
    } else if has("VRM") {
        AvatarKind::Vrm0
    } else {
        AvatarKind::Glb
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avatars::{default_model, DEFAULT_VRM0, DEFAULT_VRM1};

    #[test]
    fn the_generated_avatars_are_vrm1_and_vrm0() {
        assert_eq!(inspect("vrm", DEFAULT_VRM1).unwrap(), AvatarKind::Vrm1);
        assert_eq!(inspect("vrm", DEFAULT_VRM0).unwrap(), AvatarKind::Vrm0);
        // The strict reader agrees: every index in the documents points somewhere.
        gltf::Gltf::from_slice(DEFAULT_VRM1).unwrap();
        gltf::Gltf::from_slice(DEFAULT_VRM0).unwrap();
    }

    #[test]
    fn a_plain_glb_is_a_glb_but_not_a_vrm() {
        let glb = default_model::plain_glb();
        assert_eq!(inspect("glb", &glb).unwrap(), AvatarKind::Glb);
        assert!(matches!(inspect("vrm", &glb), Err(AvatarError::NotVrm)));
        // A VRM may also be uploaded as .glb: it is still recognised.
        assert_eq!(inspect("glb", DEFAULT_VRM1).unwrap(), AvatarKind::Vrm1);
    }

    #[test]
    fn truncated_files_are_refused() {
        for cut in [
            3,
            12,
            20,
            100,
            DEFAULT_VRM1.len() / 2,
            DEFAULT_VRM1.len() - 1,
        ] {
            let r = inspect("vrm", &DEFAULT_VRM1[..cut]);
            assert!(
                matches!(r, Err(AvatarError::NotGltf(_))),
                "cut at {cut}: {r:?}"
            );
        }
    }

    #[test]
    fn wrong_magic_is_refused() {
        let mut bytes = DEFAULT_VRM1.to_vec();
        bytes[..4].copy_from_slice(b"GLTF");
        assert!(matches!(
            inspect("vrm", &bytes),
            Err(AvatarError::NotGltf(_))
        ));
        assert!(matches!(
            inspect("glb", b"PK\x03\x04zip"),
            Err(AvatarError::NotGltf(_))
        ));
        assert!(matches!(inspect("glb", b""), Err(AvatarError::NotGltf(_))));
    }

    #[test]
    fn gltf_json_needs_an_asset_version_2() {
        let ok = br#"{"asset":{"version":"2.0"},"scenes":[],"nodes":[]}"#;
        assert_eq!(inspect("gltf", ok).unwrap(), AvatarKind::Gltf);
        for bad in [
            &br#"{"asset":{}}"#[..],
            br#"{"nodes":[]}"#,
            br#"{"asset":{"version":"1.0"}}"#,
            b"not json",
            b"",
        ] {
            assert!(
                matches!(inspect("gltf", bad), Err(AvatarError::NotGltf(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(inspect("gltf", DEFAULT_VRM1).is_err());
    }

    #[test]
    fn kind_of_file_reads_only_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.vrm");
        std::fs::write(&p, DEFAULT_VRM0).unwrap();
        assert_eq!(kind_of_file(&p, "vrm"), Some(AvatarKind::Vrm0));
        std::fs::write(&p, b"junk").unwrap();
        assert_eq!(kind_of_file(&p, "vrm"), None);
    }
}
