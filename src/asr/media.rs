//! Which recordings `/api/asr` takes: a declared media type (`audio/*`, or `video/webm` and
//! `video/mp4`, which `MediaRecorder` reports for audio-only recordings in some browsers), and
//! the container the first bytes show, which wins over the declaration.

/// A recording's container, as far as it is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioKind {
    Wav,
    Webm,
    Ogg,
    Mp3,
    Flac,
    Mp4,
    /// Declared as audio, of a kind not recognised here: the local decoder may still read it.
    Other,
}

/// A media type that is not audio.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The recording must be sent as audio (Content-Type audio/*, such as audio/wav or audio/webm; or video/webm from MediaRecorder), or as multipart/form-data with a `file` field; not {0}.")]
pub struct MediaError(pub String);

impl AudioKind {
    /// The file extension servers read the format from.
    pub fn ext(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Webm => "webm",
            Self::Ogg => "ogg",
            Self::Mp3 => "mp3",
            Self::Flac => "flac",
            Self::Mp4 => "m4a",
            Self::Other => "bin",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Wav => "audio/wav",
            Self::Webm => "audio/webm",
            Self::Ogg => "audio/ogg",
            Self::Mp3 => "audio/mpeg",
            Self::Flac => "audio/flac",
            Self::Mp4 => "audio/mp4",
            Self::Other => "application/octet-stream",
        }
    }

    /// The container the bytes start with, if it is one of ours.
    pub fn sniff(bytes: &[u8]) -> Option<AudioKind> {
        let starts = |magic: &[u8]| bytes.starts_with(magic);
        if starts(b"RIFF") && bytes.get(8..12) == Some(b"WAVE") {
            Some(Self::Wav)
        } else if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
            Some(Self::Webm)
        } else if starts(b"OggS") {
            Some(Self::Ogg)
        } else if starts(b"fLaC") {
            Some(Self::Flac)
        } else if starts(b"ID3") || (bytes.len() > 1 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0)
        {
            Some(Self::Mp3)
        } else if bytes.get(4..8) == Some(b"ftyp") {
            Some(Self::Mp4)
        } else {
            None
        }
    }

    /// The kind a raw body's `Content-Type` declares; anything that is not audio is refused.
    pub fn declared(content_type: Option<&str>) -> Result<AudioKind, MediaError> {
        let media = essence(content_type);
        let (top, sub) = media.split_once('/').unwrap_or((media.as_str(), ""));
        match (top, sub) {
            ("audio", sub) if !sub.is_empty() => Ok(Self::of_subtype(sub)),
            ("video", "webm") => Ok(Self::Webm),
            ("video", "mp4") => Ok(Self::Mp4),
            ("video", "ogg") => Ok(Self::Ogg),
            _ if media.is_empty() => Err(MediaError("no Content-Type".into())),
            _ => Err(MediaError(media)),
        }
    }

    /// The kind a multipart `file` part declares. Without a type, or with the generic
    /// `application/octet-stream` a form may send for any file, the bytes decide.
    pub fn declared_part(content_type: Option<&str>) -> Result<AudioKind, MediaError> {
        match essence(content_type).as_str() {
            "" | "application/octet-stream" => Ok(Self::Other),
            _ => Self::declared(content_type),
        }
    }

    fn of_subtype(sub: &str) -> AudioKind {
        match sub {
            "wav" | "wave" | "x-wav" | "vnd.wave" => Self::Wav,
            "webm" => Self::Webm,
            "ogg" | "opus" => Self::Ogg,
            "mpeg" | "mp3" => Self::Mp3,
            "flac" | "x-flac" => Self::Flac,
            "mp4" | "m4a" | "x-m4a" | "aac" => Self::Mp4,
            _ => Self::Other,
        }
    }
}

/// `type/subtype` of a `Content-Type`, lower case, without parameters (`;codecs=opus`).
fn essence(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_and_recorder_types_are_taken_and_others_refused() {
        assert_eq!(
            AudioKind::declared(Some("audio/webm;codecs=opus")),
            Ok(AudioKind::Webm)
        );
        assert_eq!(AudioKind::declared(Some("video/webm")), Ok(AudioKind::Webm));
        assert_eq!(AudioKind::declared(Some("Audio/WAV")), Ok(AudioKind::Wav));
        assert_eq!(
            AudioKind::declared(Some("audio/x-foo")),
            Ok(AudioKind::Other)
        );
        for refused in [
            "application/octet-stream",
            "text/plain",
            "image/png",
            "audio",
            "video/x-matroska",
        ] {
            assert!(AudioKind::declared(Some(refused)).is_err(), "{refused}");
        }
        assert!(AudioKind::declared(None).is_err());
        assert_eq!(
            AudioKind::declared_part(Some("application/octet-stream")),
            Ok(AudioKind::Other)
        );
        assert!(AudioKind::declared_part(Some("text/plain")).is_err());
    }

    #[test]
    fn containers_are_told_by_their_first_bytes() {
        assert_eq!(
            AudioKind::sniff(b"RIFF\0\0\0\0WAVEfmt "),
            Some(AudioKind::Wav)
        );
        assert_eq!(AudioKind::sniff(b"RIFF\0\0\0\0AVI "), None);
        assert_eq!(
            AudioKind::sniff(&[0x1A, 0x45, 0xDF, 0xA3, 1]),
            Some(AudioKind::Webm)
        );
        assert_eq!(AudioKind::sniff(b"OggS\0"), Some(AudioKind::Ogg));
        assert_eq!(AudioKind::sniff(b"ID3\x04"), Some(AudioKind::Mp3));
        assert_eq!(AudioKind::sniff(&[0xFF, 0xFB, 0x90]), Some(AudioKind::Mp3));
        assert_eq!(
            AudioKind::sniff(b"\0\0\0\x20ftypM4A "),
            Some(AudioKind::Mp4)
        );
        assert_eq!(AudioKind::sniff(b"hello, world"), None);
        assert_eq!(AudioKind::sniff(b""), None);
    }
}
