//! Avatar wire types: what the list of avatars says about each file.

use serde::{Deserialize, Serialize};

/// What a model file is, as found by reading it (not by its extension alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AvatarKind {
    /// VRM 0.x: a binary glTF with the `VRM` extension.
    Vrm0,
    /// VRM 1.0: a binary glTF with the `VRMC_vrm` extension.
    Vrm1,
    /// A plain binary glTF.
    Glb,
    /// A glTF JSON document.
    Gltf,
}

impl AvatarKind {
    /// The wire name (`vrm0`, `vrm1`, `glb`, `gltf`).
    pub fn as_str(self) -> &'static str {
        match self {
            AvatarKind::Vrm0 => "vrm0",
            AvatarKind::Vrm1 => "vrm1",
            AvatarKind::Glb => "glb",
            AvatarKind::Gltf => "gltf",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AvatarKind::Vrm0 => "VRM 0.x",
            AvatarKind::Vrm1 => "VRM 1.0",
            AvatarKind::Glb => "glTF binary",
            AvatarKind::Gltf => "glTF",
        }
    }
}

/// One file in the avatars folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvatarInfo {
    pub name: String,
    /// Where the browser fetches it: `/files/avatars/<name>` (percent-encoded).
    pub url: String,
    pub size: u64,
    pub kind: AvatarKind,
    /// The built-in avatar, which cannot be deleted.
    pub default: bool,
}

/// The avatars and which one is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvatarList {
    pub avatars: Vec<AvatarInfo>,
    /// File name of the active avatar (`avatar.active` in the settings).
    pub active: String,
    /// The upload cap in bytes (`avatar.max_upload_mb`).
    pub max_upload_bytes: u64,
}

impl AvatarList {
    /// The URL of the active avatar, or of the default when the active one is missing.
    pub fn active_url(&self) -> String {
        self.avatars
            .iter()
            .find(|a| a.name == self.active)
            .map(|a| a.url.clone())
            .unwrap_or_else(|| DEFAULT_AVATAR_URL.to_string())
    }
}

/// The built-in avatar's file name (`avatar.active` defaults to it).
pub const DEFAULT_AVATAR: &str = "default.vrm";
/// Where the browser finds the built-in avatar; the viewer falls back to it.
pub const DEFAULT_AVATAR_URL: &str = "/files/avatars/default.vrm";
