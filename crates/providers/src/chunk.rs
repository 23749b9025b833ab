//! One reader of an OpenAI `chat.completion.chunk`: what the stream encoders
//! of the other inbound APIs (Messages, Responses, Gemini) take from each
//! Chat chunk, read in one pass without building a `serde_json::Value`.
//!
//! It is as lenient as a walk over a `Value` with `get`/`as_str`/`as_i64`:
//! a field of another type than expected reads as absent, a repeated key
//! counts by its last value, and only the first choice is read. It rejects
//! what `serde_json::from_slice::<Value>` rejects (text that is not JSON,
//! including an invalid string or number in a field it does not read), and
//! reads any other JSON, even one that is not an object, as a chunk with
//! nothing in it.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use tollgate_core::money::TokenUsage;

/// What the encoders use of one Chat chunk.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ChatChunk<'a> {
    pub id: Option<Cow<'a, str>>,
    /// `usage`, when it is an object: its counts, 0 where one is missing or
    /// not an integer.
    pub usage: Option<TokenUsage>,
    /// The first choice's `delta`.
    pub delta: Delta<'a>,
    /// The first choice's `finish_reason`.
    pub finish_reason: Option<Cow<'a, str>>,
}

/// A choice's `delta`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Delta<'a> {
    content: Option<Cow<'a, str>>,
    reasoning_content: Option<Cow<'a, str>>,
    /// `tool_calls`, in order; pieces of one call share its `index`.
    pub tool_calls: Vec<ToolCallDelta<'a>>,
}

/// One entry of a delta's `tool_calls`: a piece of a call (the first one
/// usually has the id and name, the others more of the arguments).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ToolCallDelta<'a> {
    /// The call's `index` among the answer's calls (0 when missing).
    pub index: u64,
    id: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    arguments: Option<Cow<'a, str>>,
}

impl<'a> ChatChunk<'a> {
    /// The chunk in `data` (its JSON text); `None` when it is not JSON.
    pub(crate) fn parse(data: &'a [u8]) -> Option<ChatChunk<'a>> {
        serde_json::from_slice::<Lenient<ChatChunk<'a>>>(data)
            .ok()
            .map(|chunk| chunk.0)
    }
}

fn non_empty<'s>(text: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
    text.as_deref().filter(|t| !t.is_empty())
}

impl Delta<'_> {
    /// The text `content`, unless empty.
    pub(crate) fn text(&self) -> Option<&str> {
        non_empty(&self.content)
    }

    /// The `reasoning_content`, unless empty.
    pub(crate) fn reasoning(&self) -> Option<&str> {
        non_empty(&self.reasoning_content)
    }
}

impl ToolCallDelta<'_> {
    /// The call's `id` ("" when missing).
    pub(crate) fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// The function's `name` ("" when missing).
    pub(crate) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// This piece of the function's `arguments`, unless empty.
    pub(crate) fn arguments(&self) -> Option<&str> {
        non_empty(&self.arguments)
    }
}

/// A value read from any JSON value: what it reads from the kinds it
/// expects, its default from the others. Every kind goes through
/// `deserialize_any`, as a `Value` does, so what a `Value` rejects is
/// rejected here too.
trait Field<'de>: Default {
    fn borrowed(text: &'de str) -> Self {
        Self::copied(text)
    }

    fn copied(_text: &str) -> Self {
        Self::default()
    }

    fn signed(_n: i64) -> Self {
        Self::default()
    }

    fn unsigned(_n: u64) -> Self {
        Self::default()
    }

    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<Lenient<Skip>>()?.is_some() {}
        Ok(Self::default())
    }

    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<Lenient<Skip>, Lenient<Skip>>()?.is_some() {}
        Ok(Self::default())
    }
}

struct Lenient<T>(T);

impl<'de, T: Field<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(FieldVisitor(PhantomData))
            .map(Lenient)
    }
}

struct FieldVisitor<T>(PhantomData<T>);

impl<'de, T: Field<'de>> Visitor<'de> for FieldVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        Ok(T::signed(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        Ok(T::unsigned(n))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<T, E> {
        Ok(T::borrowed(text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        Ok(T::copied(text))
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::array(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::object(map)
    }
}

/// A value read only to be checked and passed over.
#[derive(Default)]
struct Skip;

impl Field<'_> for Skip {}

/// A string (`as_str`).
impl<'de> Field<'de> for Option<Cow<'de, str>> {
    fn borrowed(text: &'de str) -> Self {
        Some(Cow::Borrowed(text))
    }

    fn copied(text: &str) -> Self {
        Some(Cow::Owned(text.to_owned()))
    }
}

/// A count (`as_i64`).
impl Field<'_> for Option<i64> {
    fn signed(n: i64) -> Self {
        Some(n)
    }

    fn unsigned(n: u64) -> Self {
        i64::try_from(n).ok()
    }
}

/// An index (`as_u64`).
impl Field<'_> for Option<u64> {
    fn signed(n: i64) -> Self {
        u64::try_from(n).ok()
    }

    fn unsigned(n: u64) -> Self {
        Some(n)
    }
}

/// An object read into `T` (from its default): `set` reads the value of
/// each key among `names`; the other values are passed over. A repeated
/// key is read again, so its last value counts.
fn fields<'de, T: Default, A: MapAccess<'de>>(
    mut map: A,
    names: &'static [&'static str],
    mut set: impl FnMut(&mut T, &'static str, &mut A) -> Result<(), A::Error>,
) -> Result<T, A::Error> {
    let mut target = T::default();
    while let Some(key) = map.next_key_seed(KeyOf(names))? {
        match key {
            Some(name) => set(&mut target, name, &mut map)?,
            None => skip(&mut map)?,
        }
    }
    Ok(target)
}

/// The value of the key just read.
fn value<'de, T: Field<'de>, A: MapAccess<'de>>(map: &mut A) -> Result<T, A::Error> {
    map.next_value::<Lenient<T>>().map(|value| value.0)
}

/// Passes over the value of the key just read.
fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    value::<Skip, _>(map).map(|Skip| ())
}

struct KeyOf(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeyOf {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyOf {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().copied().find(|name| *name == key))
    }
}

impl<'de> Field<'de> for ChatChunk<'de> {
    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let names = &["id", "usage", "choices"];
        fields(map, names, |chunk: &mut Self, name, map| {
            match name {
                "id" => chunk.id = value(map)?,
                "usage" => chunk.usage = value(map)?,
                "choices" => {
                    let FirstChoice(choice) = value(map)?;
                    (chunk.delta, chunk.finish_reason) = (choice.delta, choice.finish_reason);
                }
                _ => skip(map)?,
            }
            Ok(())
        })
    }
}

/// The counts of a `usage` object, as `usage_json` writes them; 0 for one
/// that is missing or not an integer.
impl<'de> Field<'de> for Option<TokenUsage> {
    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let names = &[
            "prompt_tokens",
            "completion_tokens",
            "prompt_tokens_details",
            "cache_creation_input_tokens",
        ];
        let count = |map: &mut A| value::<Option<i64>, _>(map).map(Option::unwrap_or_default);
        let usage = fields(map, names, |usage: &mut TokenUsage, name, map| {
            match name {
                "prompt_tokens" => usage.prompt_tokens = count(map)?,
                "completion_tokens" => usage.completion_tokens = count(map)?,
                "prompt_tokens_details" => {
                    usage.cached_prompt_tokens = value::<CachedTokens, _>(map)?.0.unwrap_or(0);
                }
                "cache_creation_input_tokens" => usage.cache_write_tokens = count(map)?,
                _ => skip(map)?,
            }
            Ok(())
        })?;
        Ok(Some(usage))
    }
}

/// `prompt_tokens_details.cached_tokens`.
#[derive(Default)]
struct CachedTokens(Option<i64>);

impl<'de> Field<'de> for CachedTokens {
    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        fields(map, &["cached_tokens"], |cached: &mut Self, _, map| {
            cached.0 = value(map)?;
            Ok(())
        })
    }
}

/// `Field` for a struct read from an object, the value of each key into
/// its field.
macro_rules! object_of {
    ($type:ident { $($key:literal => $field:ident),+ $(,)? }) => {
        impl<'de> Field<'de> for $type<'de> {
            fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
                fields(map, &[$($key),+], |target: &mut Self, name, map| {
                    match name {
                        $($key => target.$field = value(map)?,)+
                        _ => skip(map)?,
                    }
                    Ok(())
                })
            }
        }
    };
}

object_of!(Choice { "delta" => delta, "finish_reason" => finish_reason });
object_of!(Delta {
    "content" => content,
    "reasoning_content" => reasoning_content,
    "tool_calls" => tool_calls,
});
object_of!(Function { "name" => name, "arguments" => arguments });

/// The first element of `choices`.
#[derive(Default)]
struct FirstChoice<'a>(Choice<'a>);

#[derive(Default)]
struct Choice<'a> {
    delta: Delta<'a>,
    finish_reason: Option<Cow<'a, str>>,
}

impl<'de> Field<'de> for FirstChoice<'de> {
    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let first = seq.next_element::<Lenient<Choice<'de>>>()?;
        while seq.next_element::<Lenient<Skip>>()?.is_some() {}
        Ok(FirstChoice(
            first.map(|choice| choice.0).unwrap_or_default(),
        ))
    }
}

/// `tool_calls`: every entry, one that is not an object as a piece with
/// nothing in it (index 0), as a walk over a `Value` sees it.
impl<'de> Field<'de> for Vec<ToolCallDelta<'de>> {
    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut calls = Vec::new();
        while let Some(call) = seq.next_element::<Lenient<ToolCallDelta<'de>>>()? {
            calls.push(call.0);
        }
        Ok(calls)
    }
}

impl<'de> Field<'de> for ToolCallDelta<'de> {
    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let names = &["index", "id", "function"];
        fields(map, names, |call: &mut Self, name, map| {
            match name {
                "index" => call.index = value::<Option<u64>, _>(map)?.unwrap_or(0),
                "id" => call.id = value(map)?,
                "function" => {
                    let Function { name, arguments } = value(map)?;
                    (call.name, call.arguments) = (name, arguments);
                }
                _ => skip(map)?,
            }
            Ok(())
        })
    }
}

/// A tool call's `function`.
#[derive(Default)]
struct Function<'a> {
    name: Option<Cow<'a, str>>,
    arguments: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests;
