//! A Matrix event's JSON read as it is written: every object is read as its keys and values,
//! whatever the keys are.
//!
//! serde_json's own `Value` does not quite do that in this build. Its `raw_value` feature (a
//! dependency turns it on) makes `Value` read an object whose *first* key is
//! `$serde_json::private::RawValue` as the JSON text held in that key's value. An event's keys
//! are chosen by whoever sent it: `content` is free-form, and unknown top-level keys pass
//! federation. An event with that key first, at the top or in any object inside, would be read
//! as something else or refused, and so dropped. [`read`] builds the same `Value` without that
//! rule. The homeserver's transactions ([`super::appservice`]) and the stored events the relay
//! works ([`crate::store::matrix_events`]) are both read through it, so what was accepted at
//! intake is what the relay reads back.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// `text` (one JSON value, nothing after it) as a `Value`, each object read key by key.
/// serde_json's recursion limit still applies: nesting past it is an error, not a crash.
pub fn read(text: &str) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = AsWritten.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Builds a `Value` from what the JSON reader sees, objects included.
struct AsWritten;

impl<'de> DeserializeSeed<'de> for AsWritten {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AsWritten {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity; `Value` maps them to null all the same.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(AsWritten)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        // A key read as a plain string: no key means anything but itself. A key given twice
        // keeps its last value, as `Value` does.
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(AsWritten)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "$serde_json::private::RawValue";

    /// An event with serde_json's raw-value token as its first key, at the top and inside
    /// `content`, reads as the object it is. (`Value` reads the first as the text "@a:x", which
    /// is not JSON, and refuses the second.)
    #[test]
    fn the_raw_value_token_is_a_key_like_any_other() {
        let text = format!(
            r#"{{"{TOKEN}": "@a:x", "event_id": "$e", "room_id": "!r", "sender": "@a:x",
                "type": "m.room.message",
                "content": {{"{TOKEN}": "{{\"x\": 1}}", "msgtype": "m.text", "body": "hi"}}}}"#
        );
        assert!(serde_json::from_str::<Value>(&text).is_err());
        let event = read(&text).expect("reads");
        assert_eq!(event["event_id"], "$e");
        assert_eq!(event[TOKEN], "@a:x");
        assert_eq!(event["content"]["body"], "hi");
        assert_eq!(event["content"][TOKEN], r#"{"x": 1}"#);
    }

    /// Everything else reads exactly as `Value` reads it.
    #[test]
    fn ordinary_json_reads_as_serde_json_reads_it() {
        let text = r#"{"a": [1, -2, 3.5, 18446744073709551615, true, null, "s\u00e9"],
                       "b": {"c": {}, "d": []}, "a2": 1e300, "dup": 1, "dup": 2}"#;
        assert_eq!(
            read(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert_eq!(read(text).unwrap()["dup"], json!(2));
        for bad in ["", "{", r#"{"a": 1} x"#, "[1,]", r#""\ud800""#] {
            assert!(read(bad).is_err(), "{bad:?} should not read");
        }
    }

    #[test]
    fn nesting_past_the_recursion_limit_is_an_error() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(read(&deep).is_err());
    }
}
