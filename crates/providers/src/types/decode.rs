//! Reading a chat request in one pass over its JSON.
//!
//! serde's `#[serde(flatten)]` (the derived way to keep unknown fields)
//! first copies the whole object into a buffer of owned values, then reads
//! the struct from that copy; a request's messages were copied twice, once
//! for the request and once for each message. These visitors read the typed
//! fields straight from the body and keep every other field as sent.

use super::{ChatMessage, ChatRequest, StreamOptions};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

impl<'de> Deserialize<'de> for ChatRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ChatRequestVisitor)
    }
}

impl<'de> Deserialize<'de> for ChatMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ChatMessageVisitor)
    }
}

struct ChatRequestVisitor;

impl<'de> Visitor<'de> for ChatRequestVisitor {
    type Value = ChatRequest;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a chat request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChatRequest, A::Error> {
        let mut model: Option<String> = None;
        let mut messages: Option<Vec<ChatMessage>> = None;
        let mut stream: Option<bool> = None;
        let mut stream_options: Option<Option<StreamOptions>> = None;
        let mut max_tokens: Option<Option<i64>> = None;
        let mut max_completion_tokens: Option<Option<i64>> = None;
        let extra = fields(&mut map, |key, map| {
            match key {
                "model" => once(&mut model, "model", map.next_value()?)?,
                "messages" => once(&mut messages, "messages", map.next_value()?)?,
                "stream" => once(&mut stream, "stream", map.next_value()?)?,
                "stream_options" => {
                    once(&mut stream_options, "stream_options", map.next_value()?)?;
                }
                "max_tokens" => once(&mut max_tokens, "max_tokens", map.next_value()?)?,
                "max_completion_tokens" => once(
                    &mut max_completion_tokens,
                    "max_completion_tokens",
                    map.next_value()?,
                )?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(ChatRequest {
            model: model.ok_or_else(|| de::Error::missing_field("model"))?,
            messages: messages.ok_or_else(|| de::Error::missing_field("messages"))?,
            stream: stream.unwrap_or_default(),
            stream_options: stream_options.flatten(),
            max_tokens: max_tokens.flatten(),
            max_completion_tokens: max_completion_tokens.flatten(),
            extra,
        })
    }
}

struct ChatMessageVisitor;

impl<'de> Visitor<'de> for ChatMessageVisitor {
    type Value = ChatMessage;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChatMessage, A::Error> {
        let mut role: Option<String> = None;
        let mut content: Option<Value> = None;
        let extra = fields(&mut map, |key, map| {
            match key {
                "role" => once(&mut role, "role", map.next_value()?)?,
                "content" => once(&mut content, "content", map.next_value()?)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(ChatMessage {
            role: role.ok_or_else(|| de::Error::missing_field("role"))?,
            content: content.unwrap_or_default(),
            extra,
        })
    }
}

/// Reads an object's fields: `typed` reads the value of each field it
/// knows (and says so); every other field is kept as sent, in the map
/// returned.
fn fields<'de, A: MapAccess<'de>>(
    map: &mut A,
    mut typed: impl FnMut(&str, &mut A) -> Result<bool, A::Error>,
) -> Result<Map<String, Value>, A::Error> {
    let mut extra = Map::new();
    while let Some(Key(key)) = map.next_key()? {
        if !typed(&key, map)? {
            extra.insert(key.into_owned(), map.next_value()?);
        }
    }
    Ok(extra)
}

/// Sets a field read for the first time; a second occurrence is an error,
/// as for a derived struct.
fn once<T, E: de::Error>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), E> {
    if slot.replace(value).is_some() {
        return Err(E::duplicate_field(field));
    }
    Ok(())
}

/// An object's key, borrowed from the body unless it has escapes: only
/// the keys kept in `extra` are copied.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key.to_owned())))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_fields_are_typed_and_the_others_kept() {
        let body = br#"{"temperature":0.5,"model":"m","stream":true,
            "stream_options":{"include_usage":true},"max_tokens":7,
            "messages":[{"name":"bob","role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[]}],
            "max_completion_tokens":null,"tools":[]}"#;
        let req: ChatRequest = serde_json::from_slice(body).unwrap();
        assert_eq!(req.model, "m");
        assert!(req.stream);
        assert!(req.stream_options.unwrap().include_usage);
        assert_eq!(req.max_tokens, Some(7));
        assert_eq!(req.max_completion_tokens, None);
        assert_eq!(
            Value::Object(req.extra),
            json!({"temperature": 0.5, "tools": []})
        );
        assert_eq!(req.messages[0].role, "user");
        assert_eq!(req.messages[0].content, json!("hi"));
        assert_eq!(
            Value::Object(req.messages[0].extra.clone()),
            json!({"name": "bob"})
        );
        assert_eq!(req.messages[1].content, Value::Null);
        assert_eq!(
            Value::Object(req.messages[1].extra.clone()),
            json!({"tool_calls": []})
        );
    }

    #[test]
    fn a_key_with_escapes_is_read_too() {
        let body = br#"{"mod\u0065l":"m","messages":[{"role":"user"}],"x\"y":1}"#;
        let req: ChatRequest = serde_json::from_slice(body).unwrap();
        assert_eq!(req.model, "m");
        assert_eq!(req.messages[0].content, Value::Null);
        assert_eq!(Value::Object(req.extra), json!({"x\"y": 1}));
    }

    #[test]
    fn defaults_and_errors_are_those_of_a_derived_struct() {
        let req: ChatRequest =
            serde_json::from_value(json!({"model": "m", "messages": [], "stream_options": null}))
                .unwrap();
        assert!(!req.stream && req.stream_options.is_none() && req.max_tokens.is_none());
        let error = |body: &str| {
            serde_json::from_str::<ChatRequest>(body)
                .unwrap_err()
                .to_string()
        };
        assert!(error(r#"{"messages":[]}"#).contains("missing field `model`"));
        assert!(error(r#"{"model":"m"}"#).contains("missing field `messages`"));
        assert!(
            error(r#"{"model":"m","messages":[{"content":"hi"}]}"#)
                .contains("missing field `role`")
        );
        assert!(
            error(r#"{"model":"m","model":"n","messages":[]}"#).contains("duplicate field `model`")
        );
        assert!(
            error(r#"{"model":"m","messages":[],"stream":null}"#).contains("expected a boolean")
        );
        assert!(error(r#"{"model":"m","messages":[],"max_tokens":"9"}"#).contains("expected i64"));
        assert!(error(r#"["m",[]]"#).contains("expected a chat request object"));
    }
}
