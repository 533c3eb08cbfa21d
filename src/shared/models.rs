//! [both] The built-in model files Setup offers: what the models folder holds, read from each
//! file's own header (`GET /api/models`, and the Setup tab's list).

use serde::{Deserialize, Serialize};

/// The file `make setup` installs and `llm.local_model` names by default.
pub const DEFAULT_LOCAL_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// One `.gguf` file in the models folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalModel {
    /// The file's name: what `llm.local_model` takes.
    pub file: String,
    /// `general.name` from the header, else the file's name without `.gguf`.
    pub name: String,
    pub size_bytes: u64,
    /// The quantisation (`Q4_K_M`), when the header says.
    pub quantization: Option<String>,
    pub architecture: Option<String>,
    pub parameters: Option<u64>,
    pub license: Option<String>,
    /// Whether the file carries its own chat template; without one the engine uses llama.cpp's
    /// template for the model's family, which suits only instruction-tuned models.
    pub chat_template: bool,
    /// `llm.local_model` names this file.
    pub selected: bool,
    /// Why the header could not be read; such a file is listed but will not load.
    pub error: Option<String>,
}

impl LocalModel {
    /// "SmolLM2 135M · Q4_1 · 98 MB", for a select box.
    pub fn summary(&self) -> String {
        let mut parts = vec![self.name.clone()];
        if let Some(p) = self.parameters {
            parts.push(if p >= 1_000_000_000 {
                format!("{:.1} B parameters", p as f64 / 1e9)
            } else {
                format!("{} M parameters", p / 1_000_000)
            });
        }
        if let Some(q) = &self.quantization {
            parts.push(q.clone());
        }
        parts.push(format!("{} MB", self.size_bytes.div_ceil(1_000_000)));
        if !self.chat_template {
            parts.push("no chat template".into());
        }
        if self.error.is_some() {
            parts.push("unreadable".into());
        }
        parts.join(" · ")
    }
}

/// A name `llm.local_model` accepts: a plain `.gguf` file name, which stays inside the models
/// folder (no separators, no parent or hidden entries).
pub fn is_model_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
        && name.len() > ".gguf".len()
        && name.to_ascii_lowercase().ends_with(".gguf")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_gguf_names_are_model_files() {
        for ok in [DEFAULT_LOCAL_MODEL, "qwen 0.5b.GGUF", "ä.gguf"] {
            assert!(is_model_file_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".gguf",
            ".hidden.gguf",
            "../models/x.gguf",
            "..\\x.gguf",
            "/etc/x.gguf",
            "sub/x.gguf",
            "x.gguf\0",
            "x\n.gguf",
            "model.bin",
            "..",
        ] {
            assert!(!is_model_file_name(bad), "{bad:?}");
        }
    }
}
