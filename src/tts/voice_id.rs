//! The one check of a voice id, per provider. A voice id ends up somewhere that gives characters
//! a meaning: eSpeak NG takes it as a program argument (`-v <voice>`, where a leading `-` reads
//! as a flag and a `/` as a file to load), ElevenLabs puts it in the URL path, XTTS servers look
//! it up as a file name. Every place a voice id comes in calls [`check`]: the settings, `POST
//! /api/tts`, a character's voice, and each engine again right before using it.

use crate::shared::config::TtsProvider;

/// The longest voice id any provider gets; real ones are far shorter.
pub const MAX_CHARS: usize = 128;

/// A voice id that `provider` must not be given. It reads as the end of a sentence that names
/// the field: "voice_id must be …".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", allowed(*.provider))]
pub struct InvalidVoiceId {
    pub provider: TtsProvider,
}

/// What `provider` accepts, in words.
fn allowed(provider: TtsProvider) -> &'static str {
    match provider {
        TtsProvider::Espeak => {
            "must be an eSpeak NG voice name such as en-us or en-us+f3: at most 128 letters, digits and _ + . - characters, not starting with - or . (`espeak-ng --voices` lists them)"
        }
        TtsProvider::Elevenlabs => {
            "must be an ElevenLabs voice id such as 21m00Tcm4TlvDq8ikWAM: at most 128 letters and digits"
        }
        TtsProvider::FishAudio => {
            "must be a Fish Audio reference id: at most 128 letters, digits, _ and -"
        }
        TtsProvider::XttsServer => {
            "must be an XTTS speaker name such as female: at most 128 characters, without control characters, / or \\"
        }
        TtsProvider::PiperLocal => {
            "must be a Piper speaker number such as 0: at most 128 characters, without control characters"
        }
    }
}

/// Whether `id` may be given to `provider`. Surrounding whitespace is ignored (every caller trims
/// it before use), and an empty id always passes: it means the provider's default voice.
pub fn check(provider: TtsProvider, id: &str) -> Result<(), InvalidVoiceId> {
    let id = id.trim();
    let ok = id.chars().count() <= MAX_CHARS
        && !id.chars().any(char::is_control)
        && match provider {
            TtsProvider::Espeak => {
                !id.starts_with(['-', '.'])
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_+.-".contains(c))
            }
            TtsProvider::Elevenlabs => id.chars().all(|c| c.is_ascii_alphanumeric()),
            TtsProvider::FishAudio => id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            TtsProvider::XttsServer => !id.contains(['/', '\\']) && !matches!(id, "." | ".."),
            TtsProvider::PiperLocal => true,
        };
    if ok {
        Ok(())
    } else {
        Err(InvalidVoiceId { provider })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TtsProvider::*;

    #[test]
    fn empty_means_the_default_voice_for_every_provider() {
        for p in TtsProvider::ALL {
            assert_eq!(check(p, ""), Ok(()), "{p:?}");
            assert_eq!(check(p, "  "), Ok(()), "{p:?}");
        }
    }

    #[test]
    fn the_default_settings_voices_pass() {
        let defaults = crate::shared::config::TtsProviders::default();
        for p in TtsProvider::ALL {
            assert_eq!(check(p, &defaults.get(p).voice_id), Ok(()), "{p:?}");
        }
    }

    #[test]
    fn espeak_takes_voice_names_never_paths_or_flags() {
        for ok in ["en-us", "en-us+f3", "mb-en1", "en_GB", "de", " en-us "] {
            assert_eq!(check(Espeak, ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "/dev/stdin",
            "gmw/en",
            "../../etc/passwd",
            "-w/tmp/x",
            "--stdout",
            ".hidden",
            "en us",
            "en\nus",
            "en;rm",
            "ü",
        ] {
            assert_eq!(
                check(Espeak, bad),
                Err(InvalidVoiceId { provider: Espeak }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn elevenlabs_takes_letters_and_digits_only() {
        assert_eq!(check(Elevenlabs, "21m00Tcm4TlvDq8ikWAM"), Ok(()));
        for bad in ["../user", "a/b", "a?b=1", "a#b", "a b", "a-b", "a%2F"] {
            assert!(check(Elevenlabs, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fish_takes_reference_ids() {
        assert_eq!(check(FishAudio, "8ef4a238714b45718ce04243307c57a7"), Ok(()));
        assert_eq!(check(FishAudio, "my_voice-2"), Ok(()));
        for bad in ["a/b", "a.b", "a b", "é"] {
            assert!(check(FishAudio, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn xtts_takes_speaker_names_without_separators() {
        for ok in ["female", "Ana Florence", "speaker.wav", "Jürgen"] {
            assert_eq!(check(XttsServer, ok), Ok(()), "{ok:?}");
        }
        for bad in ["../x.wav", "/etc/passwd", "a\\b", "..", "a\tb", "a\u{7f}"] {
            assert!(check(XttsServer, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn piper_takes_what_it_took_but_bounded_and_printable() {
        assert_eq!(check(PiperLocal, "3"), Ok(()));
        assert_eq!(check(PiperLocal, "anything at all/ok"), Ok(()));
        assert!(check(PiperLocal, "0\u{0}").is_err());
        assert!(check(PiperLocal, "0\r\n1").is_err());
    }

    #[test]
    fn every_provider_bounds_the_length() {
        let longest = "a".repeat(MAX_CHARS);
        let longer = "a".repeat(MAX_CHARS + 1);
        for p in TtsProvider::ALL {
            assert_eq!(check(p, &longest), Ok(()), "{p:?}");
            assert!(check(p, &longer).is_err(), "{p:?}");
        }
    }

    #[test]
    fn the_message_says_what_is_allowed() {
        let e = check(Espeak, "/dev/stdin").unwrap_err().to_string();
        assert!(e.starts_with("must be an eSpeak NG voice name"), "{e}");
        assert!(e.contains("128"), "{e}");
    }
}
