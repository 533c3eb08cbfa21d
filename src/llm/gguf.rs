//! [ssr] Reads what Setup shows about a model file from its GGUF header: the name, architecture,
//! quantisation, licence, parameter count and whether it carries a chat template.
//!
//! Format reference: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>.
//!
//! Any file a person drops into the models folder is read, so nothing here trusts the bytes:
//! every length is checked against what is left of the file before it is read or skipped,
//! strings that are kept are capped, nested arrays are limited, and a truncated or garbage file
//! is an error, never a panic or a huge allocation. Big arrays (the tokenizer's vocabulary) are
//! skipped, not read. The tensor data itself is never touched.

use crate::shared::models::{is_model_file_name, LocalModel};
use std::{
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

/// `GGUF` as a little-endian u32.
const MAGIC: u32 = 0x4655_4747;
/// A kept string (a chat template, a name) longer than this is left out: real templates are a
/// few kB, and the cap keeps a hostile file from filling memory.
const MAX_KEPT_STRING: u64 = 256 * 1024;
/// Keys are short; anything longer is garbage.
const MAX_KEY: u64 = 64 * 1024;
/// Arrays of arrays are legal but unused; deeper nesting is treated as garbage.
const MAX_DEPTH: u8 = 3;
/// Tensor dimensions per tensor (ggml has 4).
const MAX_DIMS: u32 = 8;

/// Why a file's header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("the file could not be read ({0})")]
    Io(#[from] std::io::Error),
    #[error("it is not a GGUF file")]
    NotGguf,
    #[error("GGUF version {0} is not supported")]
    Version(u32),
    #[error("the header is cut short or damaged ({0})")]
    Damaged(&'static str),
}

/// What a GGUF header says about its model. Absent keys are `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GgufInfo {
    pub version: u32,
    /// `general.architecture`: `llama`, `gemma3`, `qwen2`…
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// `general.size_label`: `135M`, `0.5B`.
    pub size_label: Option<String>,
    /// `general.license`.
    pub license: Option<String>,
    /// `general.file_type`: llama.cpp's quantisation of most tensors.
    pub file_type: Option<u32>,
    /// `tokenizer.chat_template`, when it is not over the size cap.
    pub chat_template: Option<String>,
    /// The sum of the tensors' element counts, when the tensor table could be read.
    pub parameters: Option<u64>,
}

impl GgufInfo {
    /// The quantisation's usual name (`Q4_K_M`), from `general.file_type`.
    pub fn quantization(&self) -> Option<&'static str> {
        self.file_type.and_then(file_type_name)
    }
}

/// llama.cpp's `llama_ftype` names (`include/llama.h`).
pub fn file_type_name(file_type: u32) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

/// Reads the header of the file at `path`.
pub fn read_file(path: &Path) -> Result<GgufInfo, GgufError> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    read(BufReader::with_capacity(64 * 1024, file), len)
}

/// Reads a GGUF header from `r`, which holds `len` bytes.
pub fn read<R: Read + Seek>(r: R, len: u64) -> Result<GgufInfo, GgufError> {
    let mut src = Source { r, pos: 0, len };
    if src.u32()? != MAGIC {
        return Err(GgufError::NotGguf);
    }
    let version = src.u32()?;
    // Version 1 counted with u32s and is long gone; 2 and 3 share this layout.
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version(version));
    }
    let tensors = src.u64()?;
    let kvs = src.u64()?;
    // Each key-value pair takes at least 13 bytes, each tensor entry at least 24.
    if kvs > src.left() / 13 || tensors > src.left() / 24 {
        return Err(GgufError::Damaged("more entries than the file can hold"));
    }
    let mut info = GgufInfo {
        version,
        ..GgufInfo::default()
    };
    for _ in 0..kvs {
        let key = src
            .string(MAX_KEY)?
            .ok_or(GgufError::Damaged("a key is too long"))?;
        let kind = src.u32()?;
        match (key.as_str(), kind) {
            ("general.architecture", STRING) => info.architecture = src.kept_string()?,
            ("general.name", STRING) => info.name = src.kept_string()?,
            ("general.size_label", STRING) => info.size_label = src.kept_string()?,
            ("general.license", STRING) => info.license = src.kept_string()?,
            ("tokenizer.chat_template", STRING) => info.chat_template = src.kept_string()?,
            ("general.file_type", U32) => info.file_type = Some(src.u32()?),
            ("general.file_type", I32) => info.file_type = u32::try_from(src.u32()? as i32).ok(),
            _ => src.skip_value(kind, 0)?,
        }
    }
    // The tensor table only adds the parameter count: a file cut inside it still lists.
    info.parameters = src.parameters(tensors).ok();
    Ok(info)
}

/// Every `.gguf` in `dirs`, the first folder's copy winning when two hold the same name (as
/// the engine's lookup does), sorted by name; `selected` is the configured one. At most
/// [`MAX_LISTED`] files are read.
pub fn list(dirs: &[PathBuf], selected: &str) -> Vec<LocalModel> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Some(file) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_model_file_name(&file) || found.iter().any(|(f, _)| *f == file) {
                continue;
            }
            let path = entry.path();
            if path.is_file() && found.len() < MAX_LISTED {
                found.push((file, path));
            }
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|(file, path)| describe(file, &path, selected))
        .collect()
}

/// Enough for any real folder; a folder with thousands of files is not read whole on a request.
pub const MAX_LISTED: usize = 200;

fn describe(file: String, path: &Path, selected: &str) -> LocalModel {
    let size_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let stem = file
        .get(..file.len().saturating_sub(".gguf".len()))
        .unwrap_or(&file)
        .to_string();
    let selected = file == selected;
    match read_file(path) {
        Ok(info) => LocalModel {
            name: info.name.clone().unwrap_or(stem),
            quantization: info.quantization().map(str::to_string),
            architecture: info.architecture,
            parameters: info.parameters,
            license: info.license,
            chat_template: info.chat_template.is_some(),
            file,
            size_bytes,
            selected,
            error: None,
        },
        Err(e) => LocalModel {
            file,
            name: stem,
            size_bytes,
            quantization: None,
            architecture: None,
            parameters: None,
            license: None,
            chat_template: false,
            selected,
            error: Some(e.to_string()),
        },
    }
}

const U8: u32 = 0;
const I8: u32 = 1;
const U16: u32 = 2;
const I16: u32 = 3;
const U32: u32 = 4;
const I32: u32 = 5;
const F32: u32 = 6;
const BOOL: u32 = 7;
const STRING: u32 = 8;
const ARRAY: u32 = 9;
const U64: u32 = 10;
const I64: u32 = 11;
const F64: u32 = 12;

/// The bytes being read, with the position checked against the length before every step.
struct Source<R> {
    r: R,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Source<R> {
    fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn need(&self, n: u64) -> Result<(), GgufError> {
        if n > self.left() {
            Err(GgufError::Damaged("it ends early"))
        } else {
            Ok(())
        }
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        self.need(N as u64)?;
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => GgufError::Damaged("it ends early"),
            _ => GgufError::Io(e),
        })?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        self.bytes::<8>().map(u64::from_le_bytes)
    }

    fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        self.need(n)?;
        let step = i64::try_from(n).map_err(|_| GgufError::Damaged("a length is too big"))?;
        self.r.seek(SeekFrom::Current(step))?;
        self.pos += n;
        Ok(())
    }

    /// A string of at most `max` bytes, or `None` (skipped) when it is longer. Invalid UTF-8 is
    /// replaced, not refused: the text is only shown.
    fn string(&mut self, max: u64) -> Result<Option<String>, GgufError> {
        let n = self.u64()?;
        self.need(n)?;
        if n > max {
            self.skip(n)?;
            return Ok(None);
        }
        let mut buf = Vec::with_capacity(n as usize);
        (&mut self.r).take(n).read_to_end(&mut buf)?;
        if buf.len() as u64 != n {
            return Err(GgufError::Damaged("it ends early"));
        }
        self.pos += n;
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    fn kept_string(&mut self) -> Result<Option<String>, GgufError> {
        self.string(MAX_KEPT_STRING)
    }

    fn skip_value(&mut self, kind: u32, depth: u8) -> Result<(), GgufError> {
        if let Some(size) = scalar_size(kind) {
            return self.skip(size);
        }
        match kind {
            STRING => {
                let n = self.u64()?;
                self.skip(n)
            }
            ARRAY if depth < MAX_DEPTH => {
                let item = self.u32()?;
                let count = self.u64()?;
                if let Some(size) = scalar_size(item) {
                    let total = count
                        .checked_mul(size)
                        .ok_or(GgufError::Damaged("an array is too big"))?;
                    return self.skip(total);
                }
                // Every string or array item takes at least 8 bytes: a count past that is
                // garbage, and the loop below is bounded by the file's length.
                if count > self.left() / 8 {
                    return Err(GgufError::Damaged("an array is longer than the file"));
                }
                for _ in 0..count {
                    self.skip_value(item, depth + 1)?;
                }
                Ok(())
            }
            ARRAY => Err(GgufError::Damaged("arrays nested too deep")),
            _ => Err(GgufError::Damaged("an unknown value type")),
        }
    }

    /// The tensor table: name, dimensions, type, offset for each; the element counts added up.
    fn parameters(&mut self, tensors: u64) -> Result<u64, GgufError> {
        let mut total: u64 = 0;
        for _ in 0..tensors {
            let n = self.u64()?;
            self.skip(n)?;
            let dims = self.u32()?;
            if dims > MAX_DIMS {
                return Err(GgufError::Damaged("a tensor has too many dimensions"));
            }
            let mut elements: u64 = 1;
            for _ in 0..dims {
                elements = elements
                    .checked_mul(self.u64()?)
                    .ok_or(GgufError::Damaged("a tensor is too big"))?;
            }
            self.skip(4 + 8)?;
            total = total
                .checked_add(elements)
                .ok_or(GgufError::Damaged("too many parameters"))?;
        }
        Ok(total)
    }
}

fn scalar_size(kind: u32) -> Option<u64> {
    Some(match kind {
        U8 | I8 | BOOL => 1,
        U16 | I16 => 2,
        U32 | I32 | F32 => 4,
        U64 | I64 | F64 => 8,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A small valid header: a few keys of each shape, then two tensors.
    fn header() -> Vec<u8> {
        fn s(out: &mut Vec<u8>, v: &str) {
            out.extend((v.len() as u64).to_le_bytes());
            out.extend(v.as_bytes());
        }
        let mut b = Vec::new();
        b.extend(MAGIC.to_le_bytes());
        b.extend(3u32.to_le_bytes());
        b.extend(2u64.to_le_bytes()); // tensors
        b.extend(6u64.to_le_bytes()); // key-value pairs
        s(&mut b, "general.architecture");
        b.extend(STRING.to_le_bytes());
        s(&mut b, "llama");
        s(&mut b, "general.name");
        b.extend(STRING.to_le_bytes());
        s(&mut b, "Tiny Test");
        s(&mut b, "general.file_type");
        b.extend(U32.to_le_bytes());
        b.extend(15u32.to_le_bytes());
        s(&mut b, "tokenizer.ggml.tokens");
        b.extend(ARRAY.to_le_bytes());
        b.extend(STRING.to_le_bytes());
        b.extend(3u64.to_le_bytes());
        for t in ["a", "bc", "<s>"] {
            s(&mut b, t);
        }
        s(&mut b, "tokenizer.ggml.scores");
        b.extend(ARRAY.to_le_bytes());
        b.extend(F32.to_le_bytes());
        b.extend(3u64.to_le_bytes());
        b.extend([0u8; 12]);
        s(&mut b, "tokenizer.chat_template");
        b.extend(STRING.to_le_bytes());
        s(&mut b, "{{ messages }}");
        for (name, dims) in [("a", &[4u64, 3][..]), ("b", &[5u64][..])] {
            s(&mut b, name);
            b.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(2u32.to_le_bytes());
            b.extend(0u64.to_le_bytes());
        }
        b
    }

    fn parse(bytes: &[u8]) -> Result<GgufInfo, GgufError> {
        read(Cursor::new(bytes), bytes.len() as u64)
    }

    #[test]
    fn a_header_gives_its_name_quantisation_template_and_parameters() {
        let info = parse(&header()).unwrap();
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        assert_eq!(info.name.as_deref(), Some("Tiny Test"));
        assert_eq!(info.quantization(), Some("Q4_K_M"));
        assert_eq!(info.chat_template.as_deref(), Some("{{ messages }}"));
        assert_eq!(info.parameters, Some(17));
    }

    #[test]
    fn every_truncation_is_an_error_or_a_partial_answer_never_a_panic() {
        let full = header();
        for cut in 0..full.len() {
            // A cut inside the tensor table still lists the file, without a parameter count.
            if let Ok(info) = parse(&full[..cut]) {
                assert_eq!(info.parameters, None, "cut at {cut}");
                assert_eq!(info.name.as_deref(), Some("Tiny Test"));
            }
        }
    }

    #[test]
    fn wrong_magic_version_and_huge_counts_are_refused() {
        let mut b = header();
        b[0] = b'X';
        assert!(matches!(parse(&b), Err(GgufError::NotGguf)));
        let mut b = header();
        b[4] = 1;
        assert!(matches!(parse(&b), Err(GgufError::Version(1))));
        let mut b = header();
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(parse(&b), Err(GgufError::Damaged(_))));
        // The array of strings claims 2^60 items.
        let mut b = header();
        let at = find(&b, b"tokenizer.ggml.tokens") + 21 + 8;
        b[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(matches!(parse(&b), Err(GgufError::Damaged(_))));
        // A string length past the end of the file.
        let mut b = header();
        let at = find(&b, b"Tiny Test") - 8;
        b[at..at + 8].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
        assert!(matches!(parse(&b), Err(GgufError::Damaged(_))));
    }

    #[test]
    fn every_single_byte_flip_is_survived() {
        let full = header();
        for i in 0..full.len() {
            for v in [0x00, 0xff, 0x7f, 0x80] {
                let mut b = full.clone();
                b[i] = v;
                let _ = parse(&b);
            }
        }
    }

    #[test]
    fn a_folder_lists_its_gguf_files_first_folder_first_and_garbage_as_unreadable() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("tiny.gguf"), header()).unwrap();
        std::fs::write(a.path().join("cut.gguf"), &header()[..30]).unwrap();
        std::fs::write(a.path().join("notes.txt"), "x").unwrap();
        std::fs::write(a.path().join(".hidden.gguf"), header()).unwrap();
        std::fs::create_dir(a.path().join("dir.gguf")).unwrap();
        std::fs::write(b.path().join("tiny.gguf"), b"garbage").unwrap();
        std::fs::write(b.path().join("other.gguf"), header()).unwrap();
        let listed = list(&[a.path().into(), b.path().into()], "other.gguf");
        let files: Vec<_> = listed.iter().map(|m| m.file.as_str()).collect();
        assert_eq!(files, ["cut.gguf", "other.gguf", "tiny.gguf"]);
        assert!(listed[0].error.is_some());
        assert_eq!(listed[0].name, "cut");
        assert!(listed[1].selected && !listed[2].selected);
        // The first folder's copy, not the garbage one of the same name.
        assert_eq!(listed[2].name, "Tiny Test");
        assert_eq!(listed[2].quantization.as_deref(), Some("Q4_K_M"));
        assert!(listed[2].chat_template);
    }

    fn find(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len())
            .position(|w| w == needle)
            .expect("present")
    }

    /// The installed model, and any candidate put beside it: read whole, then cut and damaged.
    #[test]
    fn the_real_model_files_read_and_their_damaged_copies_fail_cleanly() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("skipped: {} is missing (make setup)", dir.display());
            return;
        };
        let mut seen = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
                continue;
            }
            seen += 1;
            let info = read_file(&path).unwrap();
            assert!(info.architecture.is_some(), "{}", path.display());
            assert!(info.quantization().is_some(), "{}", path.display());
            assert!(
                info.parameters.unwrap_or(0) > 1_000_000,
                "{}",
                path.display()
            );
            if path.file_name().and_then(|n| n.to_str()) == Some(super::super::embedded::MODEL_FILE)
            {
                assert_eq!(info.quantization(), Some("Q4_1"));
                assert_eq!(info.license.as_deref(), Some("apache-2.0"));
                assert_eq!(info.parameters, Some(134_515_008));
                assert!(info
                    .chat_template
                    .as_deref()
                    .is_some_and(|t| t.contains("<|im_start|>")));
            }
            // The header region, cut at many places and with bytes overwritten.
            let mut head = vec![0u8; 8 << 20];
            let n = std::io::Read::read(&mut File::open(&path).unwrap(), &mut head).unwrap();
            head.truncate(n);
            let step = (head.len() / 997).max(1);
            for cut in (0..head.len()).step_by(step) {
                let _ = parse(&head[..cut]);
            }
            let mut state = 0x2545_f491_4f6c_dd1du64;
            for _ in 0..300 {
                let mut b = head[..head.len().min(1 << 20)].to_vec();
                for _ in 0..8 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let at = (state as usize) % b.len().min(64 * 1024);
                    b[at] = (state >> 32) as u8;
                }
                let _ = parse(&b);
            }
        }
        assert!(seen > 0, "no .gguf in {}", dir.display());
    }
}
