//! Token counting: a Hugging Face `tokenizer.json` (with its chat template), the built-in target's
//! word rule, or — implemented outside this crate, which knows no HTTP — the server's own
//! `/tokenize`.
//!
//! Counting happens when a workload is built (data-set lengths, the exact-length word pool, chat
//! template overhead) and at most once per finished request over its whole text; never per chunk.

use std::path::{Path, PathBuf};
use strobe_core::ChatMessage;

/// Why a tokenizer could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer {path}: {problem}. Expected a Hugging Face tokenizer.json, or a model folder holding one (with tokenizer_config.json for the chat template)")]
    Load { path: PathBuf, problem: String },
    #[error("chat template of {source_name}: {problem}")]
    Template {
        source_name: String,
        problem: String,
    },
    #[error("tokenizer {source_name}: {problem}")]
    Count {
        source_name: String,
        problem: String,
    },
}

/// Something that counts tokens the way the target server will.
pub trait TokenCounter: Send + Sync {
    /// Where the counts come from, for reports: `hf:PATH`, `server:URL`, `words`.
    fn describe(&self) -> String;

    /// Tokens of `text` sent as a completions prompt, including special tokens the tokenizer adds
    /// (a BOS token, for example) — what the server reports as `usage.prompt_tokens`.
    fn count(&self, text: &str) -> Result<u32, TokenizerError>;

    /// [`count`](Self::count) for many texts; implementations may batch or parallelise.
    fn count_many(&self, texts: &[&str]) -> Result<Vec<u32>, TokenizerError> {
        texts.iter().map(|t| self.count(t)).collect()
    }

    /// The token ids of `text` (with special tokens, as [`count`](Self::count) counts them),
    /// where the counter has them: a tokenizer file does; the word rule and a server's
    /// `/tokenize` answer `None`.
    fn token_ids(&self, _text: &str) -> Option<Result<Vec<u32>, TokenizerError>> {
        None
    }

    /// Tokens of the prompt a chat server builds from `messages` (its chat template, with the
    /// generation prompt). `None` when no template is known.
    fn count_chat(&self, messages: &[ChatMessage]) -> Result<Option<u32>, TokenizerError>;
}

/// The built-in target's rule: one token per whitespace-separated word, no template tokens.
#[derive(Clone, Copy, Debug, Default)]
pub struct WordCounter;

impl TokenCounter for WordCounter {
    fn describe(&self) -> String {
        "words (the built-in target's rule: one token per whitespace-separated word)".into()
    }

    fn count(&self, text: &str) -> Result<u32, TokenizerError> {
        Ok(text.split_whitespace().count() as u32)
    }

    fn count_chat(&self, messages: &[ChatMessage]) -> Result<Option<u32>, TokenizerError> {
        Ok(Some(
            messages
                .iter()
                .map(|m| m.content.joined_text().split_whitespace().count() as u32)
                .sum(),
        ))
    }
}

/// A Hugging Face tokenizer, with the model's chat template when one is found.
pub struct HfTokenizer {
    tokenizer: tokenizers::Tokenizer,
    path: PathBuf,
    template: Option<ChatTemplate>,
}

struct ChatTemplate {
    env: minijinja::Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl HfTokenizer {
    /// Loads `path`: a `tokenizer.json`, or a folder holding one. The chat template is read from
    /// `chat_template.jinja` or `tokenizer_config.json`'s `chat_template` beside it.
    pub fn load(path: &Path) -> Result<HfTokenizer, TokenizerError> {
        let load_err = |problem: String| TokenizerError::Load {
            path: path.to_owned(),
            problem,
        };
        let file = if path.is_dir() {
            let f = path.join("tokenizer.json");
            if !f.is_file() {
                return Err(load_err(format!(
                    "the folder has no tokenizer.json (looked for {})",
                    f.display()
                )));
            }
            f
        } else if path.is_file() {
            path.to_owned()
        } else {
            return Err(load_err("no such file or folder".into()));
        };
        let mut tokenizer = tokenizers::Tokenizer::from_file(&file)
            .map_err(|e| load_err(format!("cannot read {}: {e}", file.display())))?;
        // Counting must see every token, as servers do: no truncation or padding from the file.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| load_err(format!("cannot switch off truncation: {e}")))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let template = load_template(dir).map_err(load_err)?;
        Ok(HfTokenizer {
            tokenizer,
            path: file,
            template,
        })
    }

    /// Whether a chat template was found.
    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// The chat prompt the template renders for `messages`, with the generation prompt.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<Option<String>, TokenizerError> {
        let Some(t) = &self.template else {
            return Ok(None);
        };
        let template_err = |e: minijinja::Error| TokenizerError::Template {
            source_name: self.path.display().to_string(),
            problem: format!("{e:#}"),
        };
        let tmpl = t.env.get_template("chat").map_err(template_err)?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => &t.bos_token,
            eos_token => &t.eos_token,
        })
        .map(Some)
        .map_err(template_err)
    }

    /// The token ids of the prompt the chat template builds from `messages` (rendered, then
    /// encoded without adding special tokens again, as servers do). `None` without a template.
    pub fn chat_ids(&self, messages: &[ChatMessage]) -> Result<Option<Vec<u32>>, TokenizerError> {
        let Some(text) = self.render_chat(messages)? else {
            return Ok(None);
        };
        self.tokenizer
            .encode_fast(text.as_str(), false)
            .map(|e| Some(e.get_ids().to_vec()))
            .map_err(|e| TokenizerError::Count {
                source_name: self.path.display().to_string(),
                problem: e.to_string(),
            })
    }

    fn encode_len(&self, text: &str, special: bool) -> Result<u32, TokenizerError> {
        self.tokenizer
            .encode_fast(text, special)
            .map(|e| e.len() as u32)
            .map_err(|e| TokenizerError::Count {
                source_name: self.path.display().to_string(),
                problem: e.to_string(),
            })
    }
}

impl TokenCounter for HfTokenizer {
    fn describe(&self) -> String {
        format!("hf:{}", self.path.display())
    }

    fn count(&self, text: &str) -> Result<u32, TokenizerError> {
        self.encode_len(text, true)
    }

    fn token_ids(&self, text: &str) -> Option<Result<Vec<u32>, TokenizerError>> {
        Some(
            self.tokenizer
                .encode_fast(text, true)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| TokenizerError::Count {
                    source_name: self.path.display().to_string(),
                    problem: e.to_string(),
                }),
        )
    }

    /// Splits large batches over the machine's cores.
    fn count_many(&self, texts: &[&str]) -> Result<Vec<u32>, TokenizerError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads < 2 || texts.len() < 64 {
            return texts.iter().map(|t| self.count(t)).collect();
        }
        let chunk = texts.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = texts
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|t| self.count(t))
                            .collect::<Result<Vec<u32>, _>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(texts.len());
            for h in handles {
                out.extend(h.join().map_err(|_| TokenizerError::Count {
                    source_name: self.path.display().to_string(),
                    problem: "a counting thread panicked".into(),
                })??);
            }
            Ok(out)
        })
    }

    fn count_chat(&self, messages: &[ChatMessage]) -> Result<Option<u32>, TokenizerError> {
        match self.render_chat(messages)? {
            // Servers tokenise the rendered template without adding special tokens again.
            Some(text) => self.encode_len(&text, false).map(Some),
            None => Ok(None),
        }
    }
}

/// Reads the chat template and BOS/EOS strings beside a tokenizer.json.
fn load_template(dir: &Path) -> Result<Option<ChatTemplate>, String> {
    let config_path = dir.join("tokenizer_config.json");
    let config: Option<serde_json::Value> = match std::fs::read(&config_path) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not valid JSON: {e}", config_path.display()))?,
        ),
        Err(_) => None,
    };
    let token_str = |key: &str| -> String {
        match config.as_ref().and_then(|c| c.get(key)) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Object(o)) => o
                .get("content")
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        }
    };
    let jinja_path = dir.join("chat_template.jinja");
    let source = if let Ok(text) = std::fs::read_to_string(&jinja_path) {
        Some(text)
    } else {
        match config.as_ref().and_then(|c| c.get("chat_template")) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            // A list of named templates: use "default".
            Some(serde_json::Value::Array(named)) => named
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .or_else(|| named.first())
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_owned),
            _ => None,
        }
    };
    let Some(source) = source else {
        return Ok(None);
    };
    let mut env = minijinja::Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env.add_function("strftime_now", |_fmt: String| -> String {
        "26 Jul 2024".to_owned()
    });
    env.add_template_owned("chat", source)
        .map_err(|e| format!("its chat template does not parse: {e:#}"))?;
    Ok(Some(ChatTemplate {
        env,
        bos_token: token_str("bos_token"),
        eos_token: token_str("eos_token"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_count_whitespace_separated_words() {
        assert_eq!(WordCounter.count("a  b\nc").unwrap(), 3);
        assert_eq!(
            WordCounter
                .count_chat(&[
                    ChatMessage::text("system", "be brief"),
                    ChatMessage::text("user", "hi there you")
                ])
                .unwrap(),
            Some(5)
        );
    }

    #[test]
    fn a_missing_tokenizer_names_the_path_and_what_was_expected() {
        let e = HfTokenizer::load(Path::new("/nonexistent/tok"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("/nonexistent/tok") && e.contains("tokenizer.json"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("strobe-tok-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = HfTokenizer::load(&dir).err().unwrap().to_string();
        assert!(e.contains("has no tokenizer.json"), "{e}");
        std::fs::write(dir.join("tokenizer.json"), "{not json").unwrap();
        let e = HfTokenizer::load(&dir).err().unwrap().to_string();
        assert!(e.contains("cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
