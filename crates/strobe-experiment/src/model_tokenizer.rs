//! The model's tokenizer for the built-in target (`strobe serve --tokenizer`, `strobe run --sim …
//! --tokenizer FILE`): [`strobe_workload::HfTokenizer`] as [`strobe_server::PromptTokenizer`]
//! asks for it, so the server counts prompts, answers `/tokenize` and fills the simulated
//! engine's prefix-cache blocks with the model's token ids. (The reverse of
//! [`crate::ServerTokenizer`], which counts through a server's `/tokenize`.)

use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use strobe_core::ChatMessage;
use strobe_server::{ModelTokenizer, PromptTokenizer};
use strobe_workload::{HfTokenizer, TokenCounter, TokenizerError};

/// Loads a `tokenizer.json` or a model folder holding one (with its chat template) for the
/// built-in target.
pub fn model_tokenizer(path: &Path) -> Result<ModelTokenizer, TokenizerError> {
    Ok(ModelTokenizer(Arc::new(Served(HfTokenizer::load(path)?))))
}

struct Served(HfTokenizer);

impl PromptTokenizer for Served {
    fn describe(&self) -> String {
        self.0.describe()
    }

    fn prompt_ids(&self, text: &str) -> Result<Vec<u32>, String> {
        match self.0.token_ids(text) {
            Some(ids) => ids.map_err(|e| e.to_string()),
            None => Err("this tokenizer gives no token ids".into()),
        }
    }

    fn chat_ids(&self, messages: &Value) -> Result<Vec<u32>, String> {
        let messages: Vec<ChatMessage> = serde_json::from_value(messages.clone())
            .map_err(|e| format!("`messages` is not a list of chat messages: {e}"))?;
        self.0
            .chat_ids(&messages)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "{} has no chat template (chat_template.jinja or tokenizer_config.json beside it)",
                    self.describe()
                )
            })
    }
}
