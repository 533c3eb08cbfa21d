//! What a model file is. The `gltf` crate reads the binary container (magic, version, declared
//! length, chunks) and the JSON schema; the VRM extensions are looked up in the same JSON.

use super::AvatarError;
use crate::shared::avatars::AvatarKind;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The root keys the VRM check needs; everything else in the document is ignored here.
#[derive(Deserialize)]
struct ExtensionProbe {
    #[serde(default)]
    extensions: BTreeMap<String, serde::de::IgnoredAny>,
}

/// The most JSON an avatar may have (a `.gltf` file, or a binary file's JSON chunk). The JSON is
/// parsed whole in memory, twice; real avatars have well under a megabyte of it, their meshes
/// and textures being in the binary chunk.
pub const MAX_JSON_BYTES: u64 = 32 * 1024 * 1024;

/// The binary container's header (magic, version, length) and its first chunk's header (length,
/// type): all an upload needs to show before its JSON chunk's size is known.
pub const GLB_HEAD_LEN: usize = 20;

/// Refuses a binary glTF whose first 20 bytes declare a JSON chunk over [`MAX_JSON_BYTES`], so an
/// upload can be stopped before the rest of it is read. Anything else (another magic, a first
/// chunk that is not JSON) passes here and is judged on the whole file by [`inspect`].
pub fn check_glb_head(head: &[u8]) -> Result<(), AvatarError> {
    let Some(head) = head.get(..GLB_HEAD_LEN) else {
        return Ok(());
    };
    if &head[0..4] != b"glTF" || &head[16..20] != b"JSON" {
        return Ok(());
    }
    let declared = u64::from(u32::from_le_bytes([head[12], head[13], head[14], head[15]]));
    json_size_ok(declared)
}

fn json_size_ok(bytes: u64) -> Result<(), AvatarError> {
    if bytes > MAX_JSON_BYTES {
        return Err(AvatarError::JsonTooLarge {
            declared_mb: bytes.div_ceil(1024 * 1024),
            limit_mb: MAX_JSON_BYTES / (1024 * 1024),
        });
    }
    Ok(())
}

/// Validates a whole file given its extension (`vrm`, `glb`, `gltf`) and says what it is.
pub fn inspect(ext: &str, bytes: &[u8]) -> Result<AvatarKind, AvatarError> {
    match ext {
        "gltf" => {
            json_size_ok(bytes.len() as u64)?;
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
            check_glb_head(bytes)?;
            // `Glb::from_slice` (gltf 1.4) subtracts the header's 12 bytes from the declared
            // length unchecked: a declared length under 12 overflows (a panic in debug builds).
            if let Some(&[a, b, c, d]) = bytes.get(8..12) {
                if u32::from_le_bytes([a, b, c, d]) < 12 {
                    return Err(AvatarError::NotGltf(
                        "the binary container is damaged (its declared length is shorter than its header)".into(),
                    ));
                }
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

/// The length of the JSON chunk a binary glTF's first [`GLB_HEAD_LEN`] bytes declare, `None`
/// when they are not a binary glTF with a JSON chunk first. With [`kind_of_json_chunk`], the
/// kind of a stored model is known from its header and JSON chunk alone (the binary payload of a
/// large model is not read).
pub(super) fn json_chunk_len(head: &[u8]) -> Option<u64> {
    let head = head.get(..GLB_HEAD_LEN)?;
    if &head[0..4] != b"glTF" || &head[16..20] != b"JSON" {
        return None;
    }
    Some(u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as u64)
}

/// The kind a binary glTF's JSON chunk makes it.
pub(super) fn kind_of_json_chunk(json: &[u8]) -> Option<AvatarKind> {
    kind_of_document(json).ok()
}

/// A `.gltf` file's kind, `None` when it is not a glTF document.
pub(super) fn kind_of_gltf(json: &[u8]) -> Option<AvatarKind> {
    check_document(json).ok().map(|_| AvatarKind::Gltf)
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
    use crate::avatars::{DEFAULT_VRM0, DEFAULT_VRM1};

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
        assert_eq!(inspect("glb", BOX_GLB).unwrap(), AvatarKind::Glb);
        assert!(matches!(inspect("vrm", BOX_GLB), Err(AvatarError::NotVrm)));
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

    /// Real files made by others (see tests/fixtures/avatars/PROVENANCE.md).
    const BOX_GLB: &[u8] = include_bytes!("../../tests/fixtures/avatars/Box.glb");
    const SAMPLE_VRM1: &[u8] =
        include_bytes!("../../tests/fixtures/avatars/VRMC_vrm_expressions_isBinary_Overrides.vrm");
    const ANIMATION_VRMA: &[u8] = include_bytes!("../../tests/fixtures/avatars/test.vrma");

    #[test]
    fn real_files_made_by_others_are_recognised() {
        assert_eq!(inspect("glb", BOX_GLB).unwrap(), AvatarKind::Glb);
        assert!(matches!(inspect("vrm", BOX_GLB), Err(AvatarError::NotVrm)));
        assert_eq!(inspect("vrm", SAMPLE_VRM1).unwrap(), AvatarKind::Vrm1);
        // A VRM animation is a glTF binary, but not an avatar.
        assert_eq!(inspect("glb", ANIMATION_VRMA).unwrap(), AvatarKind::Glb);
        assert!(matches!(
            inspect("vrm", ANIMATION_VRMA),
            Err(AvatarError::NotVrm)
        ));
    }

    #[test]
    fn a_json_chunk_over_32_mb_is_refused_from_its_header_alone() {
        let mut head = BOX_GLB[..GLB_HEAD_LEN].to_vec();
        assert!(check_glb_head(&head).is_ok());
        let over = (MAX_JSON_BYTES + 1) as u32;
        head[12..16].copy_from_slice(&over.to_le_bytes());
        assert!(matches!(
            check_glb_head(&head),
            Err(AvatarError::JsonTooLarge {
                declared_mb: 33,
                limit_mb: 32
            })
        ));
        let mut whole = BOX_GLB.to_vec();
        whole[12..16].copy_from_slice(&over.to_le_bytes());
        assert!(matches!(
            inspect("glb", &whole),
            Err(AvatarError::JsonTooLarge { .. })
        ));
        // Exactly the limit is allowed by the header (and judged on the whole file later).
        head[12..16].copy_from_slice(&(MAX_JSON_BYTES as u32).to_le_bytes());
        assert!(check_glb_head(&head).is_ok());
        // Too short to tell, or not a binary glTF: nothing to say yet.
        assert!(check_glb_head(&head[..19]).is_ok());
        assert!(check_glb_head(b"PK\x03\x04 and more bytes after it").is_ok());
    }

    #[test]
    fn a_declared_length_shorter_than_the_header_is_refused() {
        for declared in [0u32, 1, 11] {
            let mut bytes = BOX_GLB.to_vec();
            bytes[8..12].copy_from_slice(&declared.to_le_bytes());
            assert!(matches!(
                inspect("glb", &bytes),
                Err(AvatarError::NotGltf(_))
            ));
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::Index;

        /// A field of the binary container (header and chunk headers).
        #[derive(Clone, Copy, Debug)]
        enum Field {
            Version,
            Length,
            JsonLength,
            JsonType,
            BinLength,
            BinType,
        }

        /// What a field is set to, relative to what a damaged file would plausibly hold.
        #[derive(Clone, Copy, Debug)]
        enum Set {
            Small(u32),
            NearOriginal(i64),
            NearFileLength(i64),
            Any(u32),
        }

        #[derive(Clone, Debug)]
        enum Damage {
            FlipBits(Index, u8),
            Truncate(Index),
            Field(Field, Set),
            /// A byte of the JSON chunk replaced by JSON syntax, so the JSON parser is reached.
            Json(Index, u8),
            Insert(Index, Vec<u8>),
            Remove(Index, usize),
        }

        fn damage() -> impl Strategy<Value = Damage> {
            let field = prop::sample::select(vec![
                Field::Version,
                Field::Length,
                Field::JsonLength,
                Field::JsonType,
                Field::BinLength,
                Field::BinType,
            ]);
            let set = prop_oneof![
                (0u32..32).prop_map(Set::Small),
                (-8i64..8).prop_map(Set::NearOriginal),
                (-32i64..32).prop_map(Set::NearFileLength),
                any::<u32>().prop_map(Set::Any),
                Just(Set::Any(u32::MAX)),
            ];
            prop_oneof![
                3 => (any::<Index>(), 1u8..=255).prop_map(|(i, m)| Damage::FlipBits(i, m)),
                1 => any::<Index>().prop_map(Damage::Truncate),
                3 => (field, set).prop_map(|(f, s)| Damage::Field(f, s)),
                3 => (any::<Index>(), prop::sample::select(b"{}[]\":,0123456789-+eE.tfnul \\\x00\xff".to_vec()))
                    .prop_map(|(i, b)| Damage::Json(i, b)),
                1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
                    .prop_map(|(i, b)| Damage::Insert(i, b)),
                1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Damage::Remove(i, n)),
            ]
        }

        fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
            let b = bytes.get(at..at + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }

        /// `original` with `damage` done to it, in order.
        fn damaged(original: &[u8], damage: &[Damage]) -> Vec<u8> {
            let json_len = read_u32(original, 12).unwrap_or(0) as usize;
            let mut bytes = original.to_vec();
            for d in damage {
                if bytes.is_empty() {
                    break;
                }
                match d {
                    Damage::FlipBits(i, mask) => {
                        let at = i.index(bytes.len());
                        bytes[at] ^= mask;
                    }
                    Damage::Truncate(i) => bytes.truncate(i.index(bytes.len())),
                    Damage::Field(field, set) => {
                        let at = match field {
                            Field::Version => 4,
                            Field::Length => 8,
                            Field::JsonLength => 12,
                            Field::JsonType => 16,
                            Field::BinLength => 20 + json_len,
                            Field::BinType => 24 + json_len,
                        };
                        let Some(old) = read_u32(&bytes, at) else {
                            continue;
                        };
                        let value = match *set {
                            Set::Small(v) | Set::Any(v) => v,
                            Set::NearOriginal(d) => {
                                (i64::from(old) + d).clamp(0, u32::MAX.into()) as u32
                            }
                            Set::NearFileLength(d) => {
                                (bytes.len() as i64 + d).clamp(0, u32::MAX.into()) as u32
                            }
                        };
                        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
                    }
                    Damage::Json(i, b) => {
                        let end = (20 + json_len).min(bytes.len());
                        if end > 20 {
                            bytes[20 + i.index(end - 20)] = *b;
                        }
                    }
                    Damage::Insert(i, more) => {
                        let tail = bytes.split_off(i.index(bytes.len() + 1));
                        bytes.extend_from_slice(more);
                        bytes.extend(tail);
                    }
                    Damage::Remove(i, n) => {
                        let at = i.index(bytes.len());
                        let end = (at + n).min(bytes.len());
                        bytes.drain(at..end);
                    }
                }
            }
            bytes
        }

        /// No panic under any extension, and the answers agree with each other: a `.vrm` is
        /// only ever a VRM, a `.gltf` only JSON glTF, and the same bytes as `.glb` and `.vrm`
        /// are the same model.
        fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
            let vrm = inspect("vrm", bytes);
            let glb = inspect("glb", bytes);
            let gltf = inspect("gltf", bytes);
            if let Ok(kind) = &vrm {
                prop_assert!(matches!(kind, AvatarKind::Vrm0 | AvatarKind::Vrm1));
                prop_assert_eq!(glb.as_ref().ok(), Some(kind));
            }
            if let Ok(kind) = &glb {
                prop_assert!(kind != &AvatarKind::Gltf);
                prop_assert!(bytes.starts_with(b"glTF"));
            }
            if let Ok(kind) = &gltf {
                prop_assert_eq!(kind, &AvatarKind::Gltf);
                prop_assert!(!bytes.starts_with(b"glTF"));
            }
            Ok(())
        }

        fn small_real_file() -> impl Strategy<Value = &'static [u8]> {
            prop::sample::select(vec![BOX_GLB, SAMPLE_VRM1, ANIMATION_VRMA])
        }

        proptest! {
            #![proptest_config(crate::testing::config())]

            /// Real files made by others, damaged the ways files get damaged: flipped bits,
            /// cut ends, container lengths and chunk types that lie, broken JSON, bytes
            /// inserted or lost.
            #[test]
            fn damaged_real_files_never_panic(
                file in small_real_file(),
                damage in prop::collection::vec(damage(), 1..5),
            ) {
                check(&damaged(file, &damage))?;
            }

            /// A file cut short anywhere is refused as .glb and .vrm: the header's declared
            /// length no longer fits.
            #[test]
            fn every_truncation_is_refused(
                file in prop::sample::select(vec![
                    BOX_GLB, SAMPLE_VRM1, ANIMATION_VRMA, DEFAULT_VRM1, DEFAULT_VRM0,
                ]),
                cut in any::<Index>(),
            ) {
                let cut = &file[..cut.index(file.len())];
                prop_assert!(matches!(inspect("glb", cut), Err(AvatarError::NotGltf(_))));
                prop_assert!(matches!(inspect("vrm", cut), Err(AvatarError::NotGltf(_))));
            }

            /// Any bytes at all, and bytes behind a plausible glTF header (through the `glb`
            /// fuzz target's entry point too).
            #[test]
            fn arbitrary_bytes_never_panic(
                bytes in prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..1024),
                    (any::<u32>(), prop_oneof![0u32..64, any::<u32>()], any::<u32>(),
                     prop::sample::select(vec![*b"JSON", *b"BIN\0", *b"json"]),
                     prop::collection::vec(any::<u8>(), 0..256))
                        .prop_map(|(version, length, chunk, kind, rest)| {
                            let mut b = b"glTF".to_vec();
                            b.extend((version % 4).to_le_bytes());
                            b.extend(length.to_le_bytes());
                            b.extend((chunk % 300).to_le_bytes());
                            b.extend(kind);
                            b.extend(rest);
                            b
                        }),
                ],
            ) {
                crate::fuzzing::glb(&bytes);
                check(&bytes)?;
            }
        }

        proptest! {
            // The generated avatars are 780 KB with a 50 KB JSON chunk that each case may parse
            // twice (several milliseconds in a debug build): one case in twenty, 500 by default.
            #![proptest_config(crate::testing::config_divided(20))]

            /// The project's own avatars, damaged the same ways.
            #[test]
            fn damaged_default_avatars_never_panic(
                file in prop::sample::select(vec![DEFAULT_VRM1, DEFAULT_VRM0]),
                damage in prop::collection::vec(damage(), 1..5),
            ) {
                check(&damaged(file, &damage))?;
            }
        }
    }

    #[test]
    fn the_kind_comes_from_the_header_and_json_chunk() {
        let len = json_chunk_len(DEFAULT_VRM0).unwrap() as usize;
        let json = &DEFAULT_VRM0[GLB_HEAD_LEN..GLB_HEAD_LEN + len];
        assert_eq!(kind_of_json_chunk(json), Some(AvatarKind::Vrm0));
        assert_eq!(json_chunk_len(b"junk"), None);
        assert_eq!(json_chunk_len(&[0u8; 20]), None);
    }
}
