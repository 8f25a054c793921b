//! JSON parsing for the whole runtime through one reader.
//!
//! `serde_json::from_str` and `serde_json::from_slice` monomorphise the whole parser
//! (numbers, strings, every visitor) once per reader type (`StrRead`, `SliceRead`).
//! The bundle and its signature are parsed from bytes, so the runtime parses its
//! other JSON (stored records, server replies, the catalog) from the same bytes
//! reader: one copy of the parser in the wasm. For UTF-8 input (every `&str`) the
//! result and the error messages are the same as `from_str`'s.

use serde::de::DeserializeOwned;

/// `serde_json::from_str`, through the byte reader the bundle parser uses.
pub fn from_str<T: DeserializeOwned>(s: &str) -> serde_json::Result<T> {
    serde_json::from_slice(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_values_and_errors_as_serde_json_from_str() {
        let ok = r#"{"a":[1,2.5,"x\u00e9"],"b":null,"c":"한국어"}"#;
        let mine: serde_json::Value = from_str(ok).expect("valid");
        let theirs: serde_json::Value = serde_json::from_str(ok).expect("valid");
        assert_eq!(mine, theirs);
        for bad in ["", "{", r#"{"a":}"#, "[1,]", r#""\x""#, "tru", "1e999"] {
            let mine = from_str::<serde_json::Value>(bad)
                .expect_err(bad)
                .to_string();
            let theirs = serde_json::from_str::<serde_json::Value>(bad)
                .expect_err(bad)
                .to_string();
            assert_eq!(mine, theirs, "{bad}");
        }
        let typed: Vec<(String, String)> = from_str(r#"[["a","b"]]"#).expect("pairs");
        assert_eq!(typed, vec![("a".to_string(), "b".to_string())]);
        assert!(from_str::<Vec<(String, String)>>(r#"[["a"]]"#).is_err());
    }
}
