//! Struct deserialization from JSON objects only.
//!
//! serde's derive reads a struct from a map *or* from a sequence (the fields in
//! declaration order), and serde_json's `deserialize_struct` dispatches to either. The
//! sequence form is never written by anyone (the compiler writes objects), but its
//! visitor code is compiled for every struct, and in the runtime's wasm it was a large
//! share of the bundle parser. The structs listed in [`map_only!`] are derived with
//! `#[serde(remote = "Self")]`, which turns the derived `serialize`/`deserialize` into
//! inherent functions, and implement the traits by calling them; `deserialize` goes
//! through [`MapOnly`], which hands the derived visitor to `deserialize_map`, so the
//! sequence visitor is never instantiated.
//!
//! Behaviour: identical for JSON objects (field names, defaults, unknown fields
//! ignored, duplicate and missing field errors, the "expected struct X" texts); a JSON
//! array in place of one of these structs is refused ("invalid type: sequence,
//! expected struct X") instead of being read positionally. Serialization is unchanged.

use serde::de::{Deserializer, Visitor};

/// A deserializer that reads structs through `deserialize_map`.
pub struct MapOnly<D>(pub D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for MapOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// `Serialize` and `Deserialize` for structs derived with `#[serde(remote = "Self")]`:
/// serialization as derived, deserialization from a map only (see the module docs).
#[macro_export]
#[doc(hidden)]
macro_rules! map_only {
    ($($t:ty),* $(,)?) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                <$t>::serialize(self, s)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$t>::deserialize($crate::map_only::MapOnly(d))
            }
        }
    )*};
}

#[cfg(test)]
mod tests {
    use crate::bundle::{RatingScale, Section};
    use crate::ingest::BatchResponse;

    #[test]
    fn objects_read_as_derived_and_arrays_are_refused() {
        let s: Section =
            serde_json::from_str(r#"{"slides":["a"],"extra":1,"id":"s","title":"S"}"#).unwrap();
        assert_eq!(s.id, "s");
        assert_eq!(s.slides, ["a"]);
        // Serialization is the derive's (field order, names).
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"id":"s","title":"S","slides":["a"]}"#
        );
        let r: RatingScale = serde_json::from_str(r#"{"min":1,"max":5}"#).unwrap();
        assert_eq!((r.min, r.max, r.min_label), (1, 5, None));

        let err = |json: &str| {
            serde_json::from_str::<Section>(json)
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"id":"s","title":"S"}"#).contains("missing field `slides`"));
        assert!(err(r#"{"id":"s","id":"t"}"#).contains("duplicate field `id`"));
        assert!(err(r#""s""#).contains("invalid type: string \"s\", expected struct Section"));
        // The positional form serde's derive would accept is refused.
        assert!(
            err(r#"["s","S",["a"]]"#).contains("invalid type: sequence, expected struct Section")
        );
        assert!(serde_json::from_str::<BatchResponse>(r#"[0,[]]"#).is_err());
        // Through serde_json::Value too (the server reads some bodies that way).
        let v = serde_json::json!({"received_at": 5, "results": []});
        let b: BatchResponse = serde_json::from_value(v).unwrap();
        assert_eq!(b.received_at, 5);
    }
}
