//! [both] The JSON encoding of server function replies and errors.
//!
//! Same wire format as `server_fn`'s `JsonEncoding` (`application/json`), but the browser reads
//! the reply as text, exactly like a resource reads the value the server rendered into the page.
//! Every type then has one JSON deserializer in the WASM bundle instead of one per reader
//! (`serde_json` instantiates its parser separately for bytes and for text).

use leptos::server_fn::Bytes;
use leptos::server_fn::{codec::Post, ContentType, Decodes, Encodes, Format, FormatType};
use serde::{de::DeserializeOwned, Serialize};

pub struct JsonText;

/// `output = Reply` on a server function: a POST whose reply is [`JsonText`].
pub type Reply = Post<JsonText>;

impl ContentType for JsonText {
    const CONTENT_TYPE: &'static str = "application/json";
}

impl FormatType for JsonText {
    const FORMAT_TYPE: Format = Format::Text;
}

impl<T: Serialize> Encodes<T> for JsonText {
    type Error = serde_json::Error;

    fn encode(output: &T) -> Result<Bytes, Self::Error> {
        serde_json::to_vec(output).map(Bytes::from)
    }
}

impl<T: DeserializeOwned> Decodes<T> for JsonText {
    type Error = serde_json::Error;

    fn decode(bytes: Bytes) -> Result<T, Self::Error> {
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            <serde_json::Error as serde::de::Error>::custom(format!("the reply is not UTF-8: {e}"))
        })?;
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::AppError;

    #[test]
    fn replies_round_trip_and_bad_bytes_are_errors() {
        let err = AppError::new("no_model", "Load a model.");
        let bytes = <JsonText as Encodes<AppError>>::encode(&err).unwrap();
        let back: AppError = <JsonText as Decodes<AppError>>::decode(bytes).unwrap();
        assert_eq!(back.code, "no_model");
        assert_eq!(back.message, "Load a model.");
        let bad = <JsonText as Decodes<AppError>>::decode(Bytes::from_static(b"\xff{"));
        assert!(bad.unwrap_err().to_string().contains("not UTF-8"));
        assert!(<JsonText as Decodes<AppError>>::decode(Bytes::from_static(b"{")).is_err());
    }
}
