//! PNG chunk walking for cards: finds the text chunks a card lives in, removes or adds them and
//! copies every other chunk through byte for byte. Never decodes pixels.
//!
//! CRCs are not checked on reading: the card text is checked by its base64 and JSON decoding,
//! and the image chunks are copied unchanged, so a wrong CRC from a careless writer costs
//! nothing here. Chunks this module writes carry correct CRCs.

use std::io::Read as _;

use super::{CardError, PNG_SIGNATURE};

/// The most a compressed text chunk (zTXt, compressed iTXt) may unpack to: a card is text.
const MAX_TEXT_BYTES: u64 = 2 * super::MAX_IMPORT_BYTES as u64;

/// One chunk of a PNG file, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chunk<'a> {
    pub kind: [u8; 4],
    pub data: &'a [u8],
    /// The whole chunk as stored: length, type, data and CRC.
    pub raw: &'a [u8],
}

/// A card text chunk's value, still base64.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Text {
    /// The keyword as the caller asked for it (files may spell it in any case).
    pub keyword: String,
    pub text: Vec<u8>,
}

/// The chunks of a PNG file up to and including IEND; anything after IEND is ignored.
pub(crate) fn chunks(bytes: &[u8]) -> Result<Vec<Chunk<'_>>, CardError> {
    let mut rest = bytes
        .strip_prefix(PNG_SIGNATURE.as_slice())
        .ok_or_else(|| CardError::BadPng("it does not start with the PNG signature".into()))?;
    let mut out = Vec::new();
    loop {
        if rest.len() < 12 {
            return Err(CardError::BadPng("it ends before its IEND chunk".into()));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(CardError::BadPng(format!(
                "chunk {} has an invalid type",
                out.len() + 1
            )));
        }
        let total = len
            .checked_add(12)
            .filter(|&total| total <= rest.len())
            .ok_or_else(|| {
                CardError::BadPng(format!(
                    "the {} chunk is cut off",
                    String::from_utf8_lossy(&kind)
                ))
            })?;
        let (raw, after) = rest.split_at(total);
        out.push(Chunk {
            kind,
            data: &raw[8..8 + len],
            raw,
        });
        if &kind == b"IEND" {
            if out.first().map(|c| &c.kind) != Some(b"IHDR") {
                return Err(CardError::BadPng("its first chunk is not IHDR".into()));
            }
            return Ok(out);
        }
        rest = after;
    }
}

/// The value of the first text chunk (tEXt, zTXt or iTXt) whose keyword equals `keyword`,
/// ignoring ASCII case.
pub(crate) fn find_text(chunks: &[Chunk<'_>], keyword: &str) -> Result<Option<Text>, CardError> {
    for chunk in chunks {
        let Some((key, value)) = split_keyword(chunk) else {
            continue;
        };
        if !key.eq_ignore_ascii_case(keyword.as_bytes()) {
            continue;
        }
        let text = match &chunk.kind {
            b"tEXt" => value.to_vec(),
            b"zTXt" => {
                // Compression method byte (0 = zlib), then the zlib stream.
                let stream = value.get(1..).unwrap_or_default();
                inflate(stream, keyword)?
            }
            _ => itxt_text(value, keyword)?,
        };
        return Ok(Some(Text {
            keyword: keyword.to_owned(),
            text,
        }));
    }
    Ok(None)
}

/// The keyword and the rest of a text chunk; None for other chunks.
fn split_keyword<'a>(chunk: &Chunk<'a>) -> Option<(&'a [u8], &'a [u8])> {
    if !matches!(&chunk.kind, b"tEXt" | b"zTXt" | b"iTXt") {
        return None;
    }
    let nul = chunk.data.iter().position(|&b| b == 0)?;
    Some((&chunk.data[..nul], &chunk.data[nul + 1..]))
}

/// iTXt after the keyword: compression flag, method, language tag\0, translated keyword\0, text.
fn itxt_text(value: &[u8], keyword: &str) -> Result<Vec<u8>, CardError> {
    let damaged = || CardError::BadPng(format!("the {keyword} iTXt chunk is malformed"));
    let (&flag, rest) = value.split_first().ok_or_else(damaged)?;
    let rest = rest.get(1..).ok_or_else(damaged)?;
    let language_end = rest.iter().position(|&b| b == 0).ok_or_else(damaged)?;
    let rest = &rest[language_end + 1..];
    let translated_end = rest.iter().position(|&b| b == 0).ok_or_else(damaged)?;
    let text = &rest[translated_end + 1..];
    if flag == 0 {
        Ok(text.to_vec())
    } else {
        inflate(text, keyword)
    }
}

fn inflate(stream: &[u8], keyword: &str) -> Result<Vec<u8>, CardError> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(stream)
        .take(MAX_TEXT_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|_| {
            CardError::BadPng(format!("the compressed {keyword} chunk does not unpack"))
        })?;
    if out.len() as u64 > MAX_TEXT_BYTES {
        return Err(CardError::BadPng(format!(
            "the compressed {keyword} chunk unpacks to more than {MAX_TEXT_BYTES} bytes"
        )));
    }
    Ok(out)
}

/// Whether a chunk is a text chunk that carries a card (`chara` or `ccv3`, any case).
fn is_card_chunk(chunk: &Chunk<'_>) -> bool {
    split_keyword(chunk).is_some_and(|(key, _)| {
        key.eq_ignore_ascii_case(b"chara") || key.eq_ignore_ascii_case(b"ccv3")
    })
}

/// The file again without its card chunks; every other chunk is copied byte for byte.
pub(crate) fn without_card_chunks(chunks: &[Chunk<'_>]) -> Vec<u8> {
    with_text(chunks, &[])
}

/// The file without its card chunks and with `texts` (keyword, text) added as tEXt chunks just
/// before IEND.
pub(crate) fn with_text(chunks: &[Chunk<'_>], texts: &[(&str, &str)]) -> Vec<u8> {
    let mut out = PNG_SIGNATURE.to_vec();
    for chunk in chunks {
        if is_card_chunk(chunk) {
            continue;
        }
        if &chunk.kind == b"IEND" {
            for (keyword, text) in texts {
                write_chunk(
                    &mut out,
                    b"tEXt",
                    &[keyword.as_bytes(), b"\0", text.as_bytes()],
                );
            }
        }
        out.extend_from_slice(chunk.raw);
    }
    out
}

/// Appends one chunk whose data is the concatenation of `parts`.
pub(crate) fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    // A PNG chunk is at most 2^31-1 bytes; callers write card text far below MAX_IMPORT_BYTES.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    out.extend_from_slice(kind);
    for part in parts {
        crc.update(part);
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// A plain 400×600 portrait for cards that have none: a calm vertical gradient, dusk blue to
/// lavender, so an exported card still shows as an image.
pub(crate) fn generated_portrait() -> Vec<u8> {
    use std::io::Write as _;
    const WIDTH: u32 = 400;
    const HEIGHT: u32 = 600;
    let mut raw = Vec::with_capacity(((WIDTH * 3 + 1) * HEIGHT) as usize);
    let top = [0x2c_u32, 0x3e, 0x63];
    let bottom = [0xb8_u32, 0xa9, 0xd9];
    for y in 0..HEIGHT {
        raw.push(0); // filter: none
        let pixel = [0, 1, 2].map(|i| {
            let value = (top[i] * (HEIGHT - 1 - y) + bottom[i] * y) / (HEIGHT - 1);
            value as u8
        });
        for _ in 0..WIDTH {
            raw.extend_from_slice(&pixel);
        }
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let idat = encoder
        .write_all(&raw)
        .and_then(|()| encoder.finish())
        .unwrap_or_default();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&WIDTH.to_be_bytes());
    ihdr.extend_from_slice(&HEIGHT.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, adaptive filters, no interlace
    let mut out = PNG_SIGNATURE.to_vec();
    write_chunk(&mut out, b"IHDR", &[&ihdr]);
    write_chunk(&mut out, b"IDAT", &[&idat]);
    write_chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn png_of(chunks: &[([u8; 4], Vec<u8>)]) -> Vec<u8> {
        let mut out = PNG_SIGNATURE.to_vec();
        write_chunk(&mut out, b"IHDR", &[&[0; 13]]);
        for (kind, data) in chunks {
            write_chunk(&mut out, kind, &[data]);
        }
        write_chunk(&mut out, b"IEND", &[]);
        out
    }

    fn text_chunk(keyword: &str, text: &str) -> ([u8; 4], Vec<u8>) {
        (
            *b"tEXt",
            [keyword.as_bytes(), b"\0", text.as_bytes()].concat(),
        )
    }

    #[test]
    fn the_generated_portrait_is_a_walkable_png_with_correct_crcs() {
        let bytes = generated_portrait();
        let chunks = chunks(&bytes).expect("walks");
        let kinds: Vec<_> = chunks.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [*b"IHDR", *b"IDAT", *b"IEND"]);
        for chunk in &chunks {
            let crc = crc32fast::hash(&chunk.raw[4..chunk.raw.len() - 4]);
            assert_eq!(chunk.raw[chunk.raw.len() - 4..], crc.to_be_bytes());
        }
        // The IDAT is a valid zlib stream of 600 rows of 1 + 400×3 bytes.
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(chunks[1].data)
            .read_to_end(&mut raw)
            .expect("inflates");
        assert_eq!(raw.len(), 600 * 1201);
    }

    #[test]
    fn keywords_match_in_any_case_and_the_first_chunk_wins() {
        let bytes = png_of(&[text_chunk("CCV3", "first"), text_chunk("ccv3", "second")]);
        let chunks = chunks(&bytes).unwrap();
        let found = find_text(&chunks, "ccv3").unwrap().unwrap();
        assert_eq!(found.text, b"first");
        assert_eq!(find_text(&chunks, "chara").unwrap(), None);
    }

    #[test]
    fn compressed_text_chunks_are_read() {
        use std::io::Write as _;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"packed").unwrap();
        let stream = z.finish().unwrap();
        let ztxt = (*b"zTXt", [b"chara\0\0".as_slice(), &stream].concat());
        let itxt = (
            *b"iTXt",
            [b"ccv3\0\x01\0en\0\0".as_slice(), &stream].concat(),
        );
        let bytes = png_of(&[ztxt, itxt]);
        let chunks = chunks(&bytes).unwrap();
        assert_eq!(
            find_text(&chunks, "chara").unwrap().unwrap().text,
            b"packed"
        );
        assert_eq!(find_text(&chunks, "ccv3").unwrap().unwrap().text, b"packed");
    }

    #[test]
    fn truncated_and_foreign_files_are_errors_not_panics() {
        let bytes = png_of(&[text_chunk("chara", "x")]);
        for cut in 0..bytes.len() {
            assert!(chunks(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(chunks(b"GIF89a").is_err());
        // A length field far past the end.
        let mut huge = PNG_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        huge.extend_from_slice(b"IHDR0000");
        assert!(chunks(&huge).is_err());
    }

    fn chunk_kind() -> impl Strategy<Value = [u8; 4]> {
        // Any letters but the two chunks every file has once, and the text chunk kinds.
        proptest::array::uniform4(proptest::char::range('a', 'z'))
            .prop_map(|k| k.map(|c| c as u8))
            .prop_filter("not a text chunk", |k| {
                !matches!(
                    k.to_ascii_lowercase().as_slice(),
                    b"text" | b"ztxt" | b"itxt"
                ) && !matches!(k.to_ascii_uppercase().as_slice(), b"IHDR" | b"IEND")
            })
    }

    proptest! {
        #[test]
        fn the_walker_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = chunks(&bytes);
            let mut with_signature = PNG_SIGNATURE.to_vec();
            with_signature.extend_from_slice(&bytes);
            if let Ok(chunks) = chunks(&with_signature) {
                let _ = find_text(&chunks, "chara");
                let _ = with_text(&chunks, &[("ccv3", "x")]);
            }
            let _ = super::super::import(&with_signature);
        }

        #[test]
        fn written_text_reads_back_and_other_chunks_survive_byte_for_byte(
            others in proptest::collection::vec(
                (chunk_kind(), proptest::collection::vec(any::<u8>(), 0..64)), 0..6),
            chara in "[A-Za-z0-9+/=]{0,64}",
            ccv3 in "[A-Za-z0-9+/=]{0,64}",
        ) {
            let mut input_chunks = others.clone();
            input_chunks.push(text_chunk("chara", "old card"));
            let original = png_of(&input_chunks);
            let parsed = chunks(&original).unwrap();
            let written = with_text(&parsed, &[("chara", &chara), ("ccv3", &ccv3)]);
            let reread = chunks(&written).unwrap();
            prop_assert_eq!(find_text(&reread, "chara").unwrap().unwrap().text, chara.as_bytes());
            prop_assert_eq!(find_text(&reread, "ccv3").unwrap().unwrap().text, ccv3.as_bytes());
            let kept = |cs: &[Chunk<'_>]| -> Vec<Vec<u8>> {
                cs.iter().filter(|c| !is_card_chunk(c)).map(|c| c.raw.to_vec()).collect()
            };
            prop_assert_eq!(kept(&parsed), kept(&reread));
            // And the written chunks carry correct CRCs.
            for chunk in &reread {
                let crc = crc32fast::hash(&chunk.raw[4..chunk.raw.len() - 4]);
                prop_assert_eq!(&chunk.raw[chunk.raw.len() - 4..], &crc.to_be_bytes());
            }
        }
    }
}
