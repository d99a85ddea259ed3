//! What to send: one request, decided by the workload before any timing happens.

use serde::{Deserialize, Serialize};

/// Which OpenAI-compatible endpoint a run targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `POST /v1/completions` with a `prompt` string.
    Completions,
    /// `POST /v1/chat/completions` with `messages`.
    Chat,
}

impl Api {
    /// The path below the base URL (which ends before `/v1`).
    pub fn path(self) -> &'static str {
        match self {
            Api::Completions => "/v1/completions",
            Api::Chat => "/v1/chat/completions",
        }
    }
}

/// A request class: one stream of requests with its own statistics. Runs with one workload use
/// class 0 (`"default"`); scenarios that mix batch and interactive traffic use several.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ClassId(pub u16);

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: MessageContent,
}

impl ChatMessage {
    /// A message whose content is plain text.
    pub fn text(role: &str, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.to_owned(),
            content: MessageContent::Text(content.into()),
        }
    }
}

/// A message's content: a string, or OpenAI content parts (text and images).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// The text of the content, parts joined by a space (images left out).
    pub fn joined_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            MessageContent::Text(t) => std::borrow::Cow::Borrowed(t),
            MessageContent::Parts(parts) => std::borrow::Cow::Owned(
                parts
                    .iter()
                    .filter_map(|p| match p {
                        ContentPart::Text { text } => Some(text.as_str()),
                        ContentPart::ImageUrl { .. } => None,
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        }
    }

    /// How many images the content carries.
    pub fn images(&self) -> usize {
        match self {
            MessageContent::Text(_) => 0,
            MessageContent::Parts(parts) => parts
                .iter()
                .filter(|p| matches!(p, ContentPart::ImageUrl { .. }))
                .count(),
        }
    }
}

/// One OpenAI content part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

/// An image reference: an `https://` URL or a `data:<mime>;base64,...` URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageUrl {
    pub url: String,
}

/// The input of one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// A plain prompt; sent as `prompt` to completions or as one user message to chat.
    Text(String),
    /// A conversation; chat only.
    Messages(Vec<ChatMessage>),
    /// A request given whole (a batch file's line): sent as is to `path`, never streamed, and
    /// its response kept (see [`crate::Captured`]).
    Raw(RawRequest),
}

/// A request body given whole, for one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawRequest {
    /// The endpoint, below the base URL (`/v1/chat/completions`).
    pub path: String,
    /// The JSON body, serialised.
    pub body: String,
}

/// One request as the workload decided it: content and lengths, no timing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSpec {
    /// Position in the run's request stream (0-based); the same seed gives the same spec per index.
    pub index: u64,
    pub class: ClassId,
    pub prompt: Prompt,
    /// The workload's own count of input tokens, when it knows one (used when the server sends no
    /// usage).
    pub input_tokens: Option<u32>,
    /// `max_tokens` to ask for.
    pub max_tokens: u32,
    /// Warm-up requests are sent and recorded but excluded from every statistic.
    pub warmup: bool,
}
