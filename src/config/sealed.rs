//! API keys at rest. Every key in `app.json` is sealed with XChaCha20-Poly1305 under a key file
//! beside it, `secret.key` (32 random bytes, readable by its owner only, made the first time a
//! key is saved). The associated data names the key's slot and the origin its endpoint had when it
//! was saved, so a sealed key copied to another slot, or an origin edited by hand, no longer opens.
//!
//! On disk a key reads `"api_key": {"sealed": "<base64 of nonce and ciphertext>", "origin":
//! "https://api.openai.com:443"}`. A plain string there is a key typed into the file by hand (or
//! kept by an older version); it belongs to the endpoint beside it and is sealed when the file is
//! loaded.

use super::keys::KeySlot;
use crate::shared::config::{AppConfig, Secret};
use base64::Engine as _;
use chacha20poly1305::{
    aead::{common::Generate, Aead, KeyInit, Payload},
    Key, XChaCha20Poly1305, XNonce,
};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::{
    fs, io,
    path::{Path, PathBuf},
};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// The key file, read once and created on first need.
pub struct KeyRing {
    path: PathBuf,
    key: Mutex<Option<[u8; KEY_LEN]>>,
    /// Why the key file cannot be used (it exists but cannot be read). A new one is then never
    /// written over it.
    unusable: Option<String>,
}

impl KeyRing {
    /// Reads `path` if it exists. A file there that is not a key is moved aside, never
    /// overwritten, and reported in the returned warning.
    pub fn open(path: PathBuf) -> (KeyRing, Option<String>) {
        let mut ring = KeyRing {
            path,
            key: Mutex::new(None),
            unusable: None,
        };
        let warning = match fs::read(&ring.path) {
            Ok(bytes) => match <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
                Ok(key) => {
                    restrict(&ring.path);
                    ring.key = Mutex::new(Some(key));
                    None
                }
                Err(_) => match set_aside(&ring.path) {
                    Ok(aside) => Some(format!(
                        "{} is not a key file ({} bytes instead of {KEY_LEN}); it was moved to {} and a new one will be made when a key is saved.",
                        ring.path.display(),
                        bytes.len(),
                        aside.display()
                    )),
                    Err(e) => {
                        let why = format!(
                            "{} is not a key file and could not be moved aside ({e}); API keys cannot be saved until it is removed.",
                            ring.path.display()
                        );
                        ring.unusable = Some(why.clone());
                        Some(why)
                    }
                },
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                let why = format!(
                    "{} cannot be read ({e}); saved API keys cannot be opened and new ones cannot be saved until its permissions are fixed.",
                    ring.path.display()
                );
                ring.unusable = Some(why.clone());
                Some(why)
            }
        };
        (ring, warning)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn existing(&self) -> Option<[u8; KEY_LEN]> {
        *self.key.lock()
    }

    /// The key, made and written (owner-only, atomically, never over another file) if there is
    /// none yet.
    fn key(&self) -> io::Result<[u8; KEY_LEN]> {
        let mut slot = self.key.lock();
        if let Some(key) = *slot {
            return Ok(key);
        }
        if let Some(why) = &self.unusable {
            return Err(io::Error::other(why.clone()));
        }
        let fresh = <[u8; KEY_LEN]>::try_generate()
            .map_err(|e| io::Error::other(format!("no random numbers from the system: {e}")))?;
        let key = create_key_file(&self.path, &fresh)?;
        *slot = Some(key);
        Ok(key)
    }

    /// Seals `plain`, bound to `slot` and `origin`.
    fn seal(&self, slot: KeySlot, origin: &str, plain: &str) -> io::Result<Value> {
        let key = self.key()?;
        let cipher = XChaCha20Poly1305::new(&Key::from(key));
        let nonce = <[u8; NONCE_LEN]>::try_generate()
            .map_err(|e| io::Error::other(format!("no random numbers from the system: {e}")))?;
        let aad = associated_data(slot, origin);
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| io::Error::other("the key could not be encrypted"))?;
        let mut blob = nonce.to_vec();
        blob.extend(sealed);
        Ok(json!({
            "sealed": base64::engine::general_purpose::STANDARD.encode(blob),
            "origin": origin,
        }))
    }

    /// Opens a sealed entry saved for `origin`.
    fn unseal(&self, slot: KeySlot, origin: &str, sealed: &str) -> Result<Secret, Unreadable> {
        let key = self.existing().ok_or(Unreadable::NoKeyFile)?;
        let blob = base64::engine::general_purpose::STANDARD
            .decode(sealed.trim())
            .map_err(|_| Unreadable::Damaged)?;
        if blob.len() < NONCE_LEN {
            return Err(Unreadable::Damaged);
        }
        let (nonce, body) = blob.split_at(NONCE_LEN);
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| Unreadable::Damaged)?;
        let aad = associated_data(slot, origin);
        let plain = XChaCha20Poly1305::new(&Key::from(key))
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Unreadable::WrongKey)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| Unreadable::Damaged)
    }
}

/// Why a sealed key could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreadable {
    /// There is no key file (or it could not be read).
    NoKeyFile,
    /// The key file is not the one the key was sealed with, or the entry was altered.
    WrongKey,
    /// The entry is not a sealed key.
    Damaged,
}

fn associated_data(slot: KeySlot, origin: &str) -> String {
    // The ASR key moved from `asr.api_key` to `asr.providers.openai_compatible.api_key`; it is
    // still bound to its old name so that a key sealed before the move still opens.
    let name = match slot {
        KeySlot::Asr => "asr.api_key".to_string(),
        other => other.path(),
    };
    format!("waifu-rt3d api key v1\n{name}\n{origin}")
}

/// Sealed keys taken out of a loaded document, to be opened once the config, and so the origin
/// of every endpoint, is known.
pub struct SealedKeys(Vec<(KeySlot, Value)>);

/// Removes every sealed (non-string) `api_key` from `doc`, so that the rest parses as a config.
pub fn take_sealed(doc: &mut Value) -> SealedKeys {
    let mut taken = Vec::new();
    for slot in KeySlot::all() {
        if let Some(Value::Object(parent)) = doc.pointer_mut(&slot.pointer()) {
            if parent.get("api_key").is_some_and(Value::is_object) {
                if let Some(entry) = parent.remove("api_key") {
                    taken.push((slot, entry));
                }
            }
        }
    }
    SealedKeys(taken)
}

/// Whether `doc` holds a key in plain text.
pub fn has_plain_keys(doc: &Value) -> bool {
    KeySlot::all().any(|slot| {
        doc.pointer(&format!("{}/api_key", slot.pointer()))
            .and_then(Value::as_str)
            .is_some_and(|k| !k.is_empty())
    })
}

/// What opening the sealed keys found.
#[derive(Debug, Default)]
pub struct Opened {
    /// Keys saved for another origin than their endpoint has now: `(slot, saved origin)`.
    pub moved: Vec<(KeySlot, String)>,
    /// Keys that could not be decrypted, and why.
    pub unreadable: Vec<(KeySlot, Unreadable)>,
}

impl Opened {
    /// Whether every sealed key was opened.
    pub fn all_opened(&self) -> bool {
        self.moved.is_empty() && self.unreadable.is_empty()
    }

    /// Start-up warnings for the keys left out; `backup` is where the file as it was is kept.
    pub fn warnings(&self, cfg: &AppConfig, ring: &KeyRing, backup: Option<&Path>) -> Vec<String> {
        let kept = backup
            .map(|b| format!(" The settings file as it was is kept as {}.", b.display()))
            .unwrap_or_default();
        let mut out = Vec::new();
        for (slot, saved_for) in &self.moved {
            out.push(format!(
                "The saved API key of {} was not used: it was saved for {saved_for}, but the endpoint now points to {}. Enter the key again in the Setup tab if it belongs there.{kept}",
                slot.label(),
                shown(&slot.origin(cfg)),
            ));
        }
        if !self.unreadable.is_empty() {
            let names = self
                .unreadable
                .iter()
                .map(|(slot, _)| slot.label())
                .collect::<Vec<_>>()
                .join(", ");
            let why = if self
                .unreadable
                .iter()
                .any(|(_, u)| *u == Unreadable::NoKeyFile)
            {
                format!("{} is missing", ring.path().display())
            } else {
                format!(
                    "{} is not the key file they were saved with, or the entries were changed",
                    ring.path().display()
                )
            };
            out.push(format!(
                "Saved API keys could not be decrypted ({names}): {why}. They count as not set.{kept} Put the original secret.key back and copy the backup over app.json, or enter the keys again in the Setup tab."
            ));
        }
        out
    }
}

fn shown(origin: &str) -> &str {
    if origin.is_empty() {
        "no address"
    } else {
        origin
    }
}

/// Opens the taken keys into `cfg`. A key is used only when its endpoint still has the origin it
/// was saved for; anything else is left unset and reported.
pub fn open_into(cfg: &mut AppConfig, sealed: SealedKeys, ring: &KeyRing) -> Opened {
    let mut opened = Opened::default();
    for (slot, entry) in sealed.0 {
        let (Some(blob), Some(saved_for)) = (
            entry.get("sealed").and_then(Value::as_str),
            entry.get("origin").and_then(Value::as_str),
        ) else {
            opened.unreadable.push((slot, Unreadable::Damaged));
            continue;
        };
        if saved_for != slot.origin(cfg) {
            opened.moved.push((slot, saved_for.to_string()));
            continue;
        }
        match ring.unseal(slot, saved_for, blob) {
            Ok(key) => *slot.key_mut(cfg) = key,
            Err(why) => opened.unreadable.push((slot, why)),
        }
    }
    opened
}

/// Replaces every key in `doc` (the serialised `cfg`) with its sealed form, bound to the origin
/// of its endpoint.
pub fn seal_keys(doc: &mut Value, cfg: &AppConfig, ring: &KeyRing) -> io::Result<()> {
    for slot in KeySlot::all() {
        let key = slot.key(cfg);
        if key.is_empty() {
            continue;
        }
        let sealed = ring.seal(slot, &slot.origin(cfg), key.expose())?;
        if let Some(Value::Object(parent)) = doc.pointer_mut(&slot.pointer()) {
            parent.insert("api_key".into(), sealed);
        }
    }
    Ok(())
}

/// Limits an existing key file to its owner, in case it was copied in with a looser mode.
fn restrict(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Writes a new key file, moved into place only if no key file appeared meanwhile (another
/// instance on the same folder). Returns the key in effect.
fn create_key_file(path: &Path, key: &[u8; KEY_LEN]) -> io::Result<[u8; KEY_LEN]> {
    if crate::private_file::create_new(path, key)? {
        return Ok(*key);
    }
    let other = fs::read(path)?;
    <[u8; KEY_LEN]>::try_from(other.as_slice())
        .map_err(|_| io::Error::other(format!("{} appeared and is not a key file", path.display())))
}

/// Moves `path` to an unused `.bak` name beside it.
fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let candidate = crate::private_file::unused_backup_name(path);
    fs::rename(path, &candidate)?;
    Ok(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::config::TtsProvider;

    fn ring(dir: &Path) -> KeyRing {
        KeyRing::open(dir.join("secret.key")).0
    }

    #[test]
    fn the_key_file_is_made_on_first_need_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let r = ring(dir.path());
        assert!(!dir.path().join("secret.key").exists());
        let sealed = r.seal(KeySlot::Llm, "https://a:443", "sk-1").unwrap();
        let file = dir.path().join("secret.key");
        assert_eq!(fs::read(&file).unwrap().len(), KEY_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret.key"], "no temporary file is left");
        // A second ring on the same folder opens what the first sealed.
        let again = ring(dir.path());
        let blob = sealed["sealed"].as_str().unwrap();
        assert_eq!(
            again.unseal(KeySlot::Llm, "https://a:443", blob).unwrap(),
            Secret::new("sk-1")
        );
    }

    #[test]
    fn a_sealed_key_opens_only_for_its_slot_and_origin() {
        let dir = tempfile::tempdir().unwrap();
        let r = ring(dir.path());
        let sealed = r.seal(KeySlot::Llm, "https://a:443", "sk-1").unwrap();
        let blob = sealed["sealed"].as_str().unwrap();
        assert!(!blob.contains("sk-1"));
        assert_eq!(
            r.unseal(KeySlot::Llm, "https://b:443", blob),
            Err(Unreadable::WrongKey)
        );
        assert_eq!(
            r.unseal(KeySlot::Tts(TtsProvider::FishAudio), "https://a:443", blob),
            Err(Unreadable::WrongKey)
        );
        assert_eq!(
            r.unseal(KeySlot::Llm, "https://a:443", "not base64!"),
            Err(Unreadable::Damaged)
        );
        // Two seals of the same key differ (fresh nonce each time).
        let twice = r.seal(KeySlot::Llm, "https://a:443", "sk-1").unwrap();
        assert_ne!(twice["sealed"], sealed["sealed"]);
    }

    #[test]
    fn a_missing_or_other_key_file_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = ring(dir.path())
            .seal(KeySlot::Llm, "https://a:443", "sk-1")
            .unwrap();
        let blob = sealed["sealed"].as_str().unwrap();
        fs::remove_file(dir.path().join("secret.key")).unwrap();
        assert_eq!(
            ring(dir.path()).unseal(KeySlot::Llm, "https://a:443", blob),
            Err(Unreadable::NoKeyFile)
        );
        fs::write(dir.path().join("secret.key"), [7u8; KEY_LEN]).unwrap();
        assert_eq!(
            ring(dir.path()).unseal(KeySlot::Llm, "https://a:443", blob),
            Err(Unreadable::WrongKey)
        );
    }

    #[test]
    fn a_key_file_of_the_wrong_size_is_moved_aside_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret.key");
        fs::write(&file, b"short").unwrap();
        let (r, warning) = KeyRing::open(file.clone());
        assert!(warning.unwrap().contains("not a key file"));
        assert_eq!(
            fs::read(dir.path().join("secret.key.bak")).unwrap(),
            b"short"
        );
        r.seal(KeySlot::Llm, "", "k").unwrap();
        assert_eq!(fs::read(&file).unwrap().len(), KEY_LEN);
    }
}
