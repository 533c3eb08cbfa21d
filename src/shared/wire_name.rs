//! [both] The wire name of a unit enum variant, read from its serde attributes, so that each
//! name is written once (by `#[serde(rename_all = ...)]` or `#[serde(rename = ...)]`) and every
//! `name()`/`from_name()` agrees with the JSON by construction.

use serde::{
    de::{value::StrDeserializer, IntoDeserializer},
    ser::{self, Impossible},
    Deserialize, Serialize,
};
use std::fmt;

/// The name serde gives `value`, a unit variant of an enum; `""` for anything else (which
/// no caller passes: the tests of each enum check every variant).
pub fn of<T: Serialize>(value: &T) -> &'static str {
    value.serialize(VariantName).unwrap_or_default()
}

/// The variant serde would read from the JSON string `name`.
pub fn parse<'de, T: Deserialize<'de>>(name: &'de str) -> Option<T> {
    let de: StrDeserializer<'de, serde::de::value::Error> = name.into_deserializer();
    T::deserialize(de).ok()
}

/// Not a unit variant.
#[derive(Debug)]
struct NotAName;

impl fmt::Display for NotAName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a unit enum variant")
    }
}

impl std::error::Error for NotAName {}

impl ser::Error for NotAName {
    fn custom<M: fmt::Display>(_: M) -> Self {
        NotAName
    }
}

/// A serializer that keeps only a unit variant's name, which serde hands over as `&'static str`.
struct VariantName;

/// Every other kind of value is refused.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<Self::Ok, NotAName> {
            Err(NotAName)
        })*
    };
}

impl ser::Serializer for VariantName {
    type Ok = &'static str;
    type Error = NotAName;
    type SerializeSeq = Impossible<&'static str, NotAName>;
    type SerializeTuple = Impossible<&'static str, NotAName>;
    type SerializeTupleStruct = Impossible<&'static str, NotAName>;
    type SerializeTupleVariant = Impossible<&'static str, NotAName>;
    type SerializeMap = Impossible<&'static str, NotAName>;
    type SerializeStruct = Impossible<&'static str, NotAName>;
    type SerializeStructVariant = Impossible<&'static str, NotAName>;

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<&'static str, NotAName> {
        Ok(variant)
    }

    refuse! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<&'static str, NotAName> {
        Err(NotAName)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, NotAName> {
        Err(NotAName)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, NotAName> {
        Err(NotAName)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotAName> {
        Err(NotAName)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotAName> {
        Err(NotAName)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotAName> {
        Err(NotAName)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotAName> {
        Err(NotAName)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotAName> {
        Err(NotAName)
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NotAName> {
        Err(NotAName)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotAName> {
        Err(NotAName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Sample {
        OneWord,
        #[serde(rename = "text+voice")]
        Renamed,
    }

    #[test]
    fn names_come_from_serde() {
        assert_eq!(of(&Sample::OneWord), "one_word");
        assert_eq!(of(&Sample::Renamed), "text+voice");
        assert_eq!(parse::<Sample>("one_word"), Some(Sample::OneWord));
        assert_eq!(parse::<Sample>("text+voice"), Some(Sample::Renamed));
        assert_eq!(parse::<Sample>("OneWord"), None);
        assert_eq!(of(&"a string"), "");
    }

    #[test]
    fn every_named_enum_round_trips() {
        use crate::shared::{health::ProviderState, history::Role};
        for role in [Role::User, Role::Assistant, Role::System] {
            assert_eq!(serde_json::to_value(role).unwrap(), role.name());
            assert_eq!(Role::from_name(role.name()), Some(role));
        }
        assert_eq!(ProviderState::NoModel.name(), "no_model");
        assert_eq!(Role::from_name("robot"), None);
    }
}
