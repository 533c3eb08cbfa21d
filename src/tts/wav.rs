//! The WAV facts speech needs: read the format and length, fix the sizes of a streamed header
//! (eSpeak's `--stdout` writes placeholders), and wrap raw PCM (ElevenLabs `pcm_*`) in a header.

/// The format chunk and where the samples are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub bits_per_sample: u16,
    pub data_offset: usize,
    pub data_len: usize,
}

impl WavInfo {
    pub fn duration_ms(&self) -> u64 {
        let frame = u64::from(self.channels.max(1)) * u64::from(self.bits_per_sample.max(8) / 8);
        let frames = self.data_len as u64 / frame.max(1);
        frames * 1000 / u64::from(self.sample_rate.max(1))
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// Reads a RIFF/WAVE header. A data size larger than the file (a streamed header) is clamped to
/// what is there.
pub fn parse(bytes: &[u8]) -> Option<WavInfo> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut format = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32_at(bytes, at + 4)? as usize;
        let body = at + 8;
        if id == b"fmt " {
            format = Some((
                u16_at(bytes, body + 2)?,
                u32_at(bytes, body + 4)?,
                u16_at(bytes, body + 14)?,
            ));
        } else if id == b"data" {
            let (channels, sample_rate, bits_per_sample) = format?;
            if sample_rate == 0 {
                return None;
            }
            return Some(WavInfo {
                sample_rate,
                channels,
                bits_per_sample,
                data_offset: body,
                data_len: size.min(bytes.len() - body),
            });
        }
        at = body.checked_add(size)?.checked_add(size & 1)?;
    }
    None
}

/// Rewrites the RIFF and data sizes to match the bytes (for headers written before the length
/// was known).
pub fn fix_sizes(bytes: &mut [u8]) -> Option<WavInfo> {
    let info = parse(bytes)?;
    let riff = u32::try_from(bytes.len().checked_sub(8)?).ok()?;
    let data = u32::try_from(info.data_len).ok()?;
    bytes.get_mut(4..8)?.copy_from_slice(&riff.to_le_bytes());
    bytes
        .get_mut(info.data_offset - 4..info.data_offset)?
        .copy_from_slice(&data.to_le_bytes());
    Some(info)
}

/// A 16-bit mono WAV around raw little-endian PCM.
pub fn wrap_pcm16_mono(pcm: &[u8], sample_rate: u32) -> Vec<u8> {
    let data_len = pcm.len() as u32;
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

/// Whether every sample is zero (xtts-api-server's stream-mode placeholder is 1 s of silence).
pub fn is_silent(bytes: &[u8]) -> bool {
    parse(bytes).is_some_and(|info| {
        bytes[info.data_offset..info.data_offset + info.data_len]
            .iter()
            .all(|b| *b == 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_pcm_reads_back() {
        let wav = wrap_pcm16_mono(&[0u8; 44_100], 22_050);
        let info = parse(&wav).unwrap();
        assert_eq!(info.sample_rate, 22_050);
        assert_eq!(info.duration_ms(), 1000);
        assert!(is_silent(&wav));
    }

    #[test]
    fn streamed_header_is_fixed() {
        let mut wav = wrap_pcm16_mono(&[1u8; 100], 16_000);
        wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        wav[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        let info = fix_sizes(&mut wav).unwrap();
        assert_eq!(info.data_len, 100);
        assert_eq!(u32_at(&wav, 40), Some(100));
        assert_eq!(u32_at(&wav, 4), Some(136));
    }

    #[test]
    fn garbage_is_not_wav() {
        assert!(parse(b"ID3\x04 not a wav").is_none());
        assert!(parse(b"RIFF\x00\x00\x00\x00WAVE").is_none());
        assert!(parse(b"").is_none());
    }
}
