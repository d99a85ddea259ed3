//! Reading one OpenAI-compatible stream chunk (or a whole non-streamed body).
//!
//! Only what timing and counting need is extracted: does this chunk carry generated text (or
//! reasoning), a `usage` object, or an `error`. Text values are borrowed as raw JSON and never
//! copied or unescaped, so a chunk costs one pass of the JSON parser and no allocation.

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

/// Token counts from a server's `usage` object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: Option<u32>,
    #[serde(default)]
    pub completion_tokens: Option<u32>,
}

/// What a chunk says, as far as strobe cares.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChunkInfo {
    /// Carries non-empty generated text or reasoning (role-only and empty deltas do not count).
    pub has_content: bool,
    pub usage: Option<Usage>,
    /// The server's `error` object, as raw JSON.
    pub error: Option<String>,
    /// The first choice carries a non-null `finish_reason`: the generation ended.
    pub finished: bool,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: FirstChoice<'a>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<Message<'a>>,
    #[serde(borrow, default)]
    message: Option<Message<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
}

/// The first element of `choices`, the rest skipped, without allocating a `Vec`.
#[derive(Default)]
struct FirstChoice<'a>(Option<Choice<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = FirstChoice<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(FirstChoice(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<Choice<'a>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstChoice(first))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

fn non_empty(v: Option<&RawValue>) -> bool {
    match v {
        None => false,
        // `null` never reaches here (Option absorbs it); an empty string or array is no content.
        Some(raw) => !matches!(raw.get(), "\"\"" | "[]" | "null"),
    }
}

impl Message<'_> {
    fn has_content(&self) -> bool {
        non_empty(self.content) || non_empty(self.reasoning_content) || non_empty(self.reasoning)
    }
}

/// Parses one chunk (a streamed event's data, or a whole non-streamed response body).
pub fn parse_chunk(data: &[u8]) -> Result<ChunkInfo, serde_json::Error> {
    let chunk: Chunk = serde_json::from_slice(data)?;
    let has_content = match &chunk.choices.0 {
        None => false,
        Some(c) => {
            non_empty(c.text)
                || c.delta.as_ref().is_some_and(Message::has_content)
                || c.message.as_ref().is_some_and(Message::has_content)
        }
    };
    let finished = chunk
        .choices
        .0
        .as_ref()
        .is_some_and(|c| c.finish_reason.is_some());
    Ok(ChunkInfo {
        has_content,
        finished,
        usage: chunk.usage,
        error: chunk.error.map(|e| e.get().to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_only_first_chunk_is_not_content() {
        let c = parse_chunk(br#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#).unwrap();
        assert!(!c.has_content);
        let c = parse_chunk(br#"{"choices":[{"delta":{"role":"assistant"}}]}"#).unwrap();
        assert!(!c.has_content);
        let c = parse_chunk(br#"{"choices":[{"delta":{"content":null}}]}"#).unwrap();
        assert!(!c.has_content);
    }

    #[test]
    fn chat_completion_and_reasoning_content_count() {
        assert!(
            parse_chunk(br#"{"choices":[{"delta":{"content":"Hi"}}]}"#)
                .unwrap()
                .has_content
        );
        assert!(
            parse_chunk(br#"{"choices":[{"text":" the","index":0}]}"#)
                .unwrap()
                .has_content
        );
        assert!(
            parse_chunk(br#"{"choices":[{"delta":{"reasoning_content":"hmm"}}]}"#)
                .unwrap()
                .has_content
        );
        assert!(
            parse_chunk(br#"{"choices":[{"delta":{"reasoning":"hmm"}}]}"#)
                .unwrap()
                .has_content
        );
        assert!(
            !parse_chunk(br#"{"choices":[{"text":""}]}"#)
                .unwrap()
                .has_content
        );
        // Escaped quotes inside text do not confuse the reader.
        assert!(
            parse_chunk(br#"{"choices":[{"text":"\"content\":\"\""}]}"#)
                .unwrap()
                .has_content
        );
    }

    #[test]
    fn finish_reason_marks_the_end() {
        assert!(
            parse_chunk(br#"{"choices":[{"delta":{"content":"x"},"finish_reason":"length"}]}"#)
                .unwrap()
                .finished
        );
        assert!(
            !parse_chunk(br#"{"choices":[{"delta":{"content":"x"},"finish_reason":null}]}"#)
                .unwrap()
                .finished
        );
        assert!(
            !parse_chunk(br#"{"choices":[{"text":"x"}]}"#)
                .unwrap()
                .finished
        );
    }

    #[test]
    fn usage_chunk_has_empty_choices() {
        let c = parse_chunk(br#"{"id":"x","choices":[],"usage":{"prompt_tokens":12,"total_tokens":76,"completion_tokens":64}}"#).unwrap();
        assert!(!c.has_content);
        assert_eq!(
            c.usage,
            Some(Usage {
                prompt_tokens: Some(12),
                completion_tokens: Some(64)
            })
        );
        let c = parse_chunk(br#"{"choices":[{"text":"a"}],"usage":null}"#).unwrap();
        assert_eq!(c.usage, None);
    }

    #[test]
    fn non_streamed_body_and_errors() {
        let c = parse_chunk(br#"{"choices":[{"message":{"role":"assistant","content":"Paris"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#).unwrap();
        assert!(c.has_content);
        let c = parse_chunk(br#"{"error":{"message":"boom","code":500}}"#).unwrap();
        assert_eq!(c.error.as_deref(), Some(r#"{"message":"boom","code":500}"#));
        assert!(parse_chunk(b"{not json").is_err());
    }
}
