//! Synthetic prompts of exact token lengths, with optional shared prefixes, multi-turn
//! conversations and images.
//!
//! Exactness comes from a word pool checked against the target's tokenizer when the workload is
//! built: each pool word is one token alone and one token after a space, and space-separated pool
//! words add up (checked on sample texts). A prompt of `n` tokens is then `n − specials` random
//! pool words — no tokenizer call per request, so generation never slows a run.

use rand::rngs::StdRng;
use rand::Rng;
use std::sync::Arc;
use strobe_core::{
    ChatMessage, ClassId, ContentPart, ImageUrl, MessageContent, Prompt, RequestSpec,
};

use crate::images::ImageSource;
use crate::lengths::LengthDist;
use crate::tokenizer::{TokenCounter, TokenizerError};
use crate::words::WORDS;
use crate::{rng_for, Variation, Workload};

/// Fewer usable words than this and prompts would repeat too often: refuse.
const MIN_POOL: usize = 32;

/// Words that each count as exactly one token under the target's tokenizer.
#[derive(Clone, Debug)]
pub struct WordPool {
    words: Vec<&'static str>,
    /// Tokens the tokenizer adds to every completions prompt (a BOS token, say).
    pub specials: u32,
    /// Where the counts came from.
    pub tokenizer: String,
}

impl WordPool {
    /// Checks every candidate word and the additivity of space-separated words.
    pub fn build(counter: &dyn TokenCounter) -> Result<WordPool, TokenizerError> {
        let fail = |problem: String| TokenizerError::Count {
            source_name: counter.describe(),
            problem,
        };
        let specials = counter.count("")?;
        let doubled: Vec<String> = WORDS.iter().map(|w| format!("{w} {w}")).collect();
        let mut texts: Vec<&str> = WORDS.to_vec();
        texts.extend(doubled.iter().map(String::as_str));
        let counts = counter.count_many(&texts)?;
        let (alone, twice) = counts.split_at(WORDS.len());
        let words: Vec<&'static str> = WORDS
            .iter()
            .zip(alone.iter().zip(twice))
            .filter(|(_, (&a, &b))| a == specials + 1 && b == specials + 2)
            .map(|(w, _)| *w)
            .collect();
        if words.len() < MIN_POOL {
            return Err(fail(format!(
                "only {} of {} common English words are single tokens; exact-length prompts need at least {MIN_POOL}",
                words.len(),
                WORDS.len()
            )));
        }
        let pool = WordPool {
            words,
            specials,
            tokenizer: counter.describe(),
        };
        // Additivity on sample texts of several lengths.
        let mut rng = rng_for(0x5eed, 0);
        let samples: Vec<(u32, String)> = [1u32, 2, 17, 300, 2049]
            .iter()
            .map(|&n| {
                let mut s = String::new();
                pool.push_words(&mut rng, n, &mut s);
                (n, s)
            })
            .collect();
        let refs: Vec<&str> = samples.iter().map(|(_, s)| s.as_str()).collect();
        for ((n, text), got) in samples.iter().zip(counter.count_many(&refs)?) {
            if got != specials + n {
                return Err(fail(format!(
                    "{n} space-separated single-token words count as {} tokens, not {}: this tokenizer merges across words, so exact lengths are not available (text starts `{}`)",
                    got - specials,
                    n,
                    &text[..text.len().min(60)]
                )));
            }
        }
        Ok(pool)
    }

    /// A pool for the built-in target's word rule, without checks (every word is one token).
    pub fn words() -> WordPool {
        WordPool {
            words: WORDS.to_vec(),
            specials: 0,
            tokenizer: crate::tokenizer::WordCounter.describe(),
        }
    }

    /// The same pool under a tokenizer that adds `specials` tokens to every prompt.
    pub fn with_specials(mut self, specials: u32) -> WordPool {
        self.specials = specials;
        self
    }

    /// Appends `n` random pool words (space-separated; a space first if `out` is not empty).
    pub fn push_words(&self, rng: &mut StdRng, n: u32, out: &mut String) {
        out.reserve(n as usize * 6);
        for _ in 0..n {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(self.words[rng.random_range(0..self.words.len())]);
        }
    }

    /// How many words the pool holds.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Never true for a built pool.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// How a chat template changes the token count of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatShape {
    /// Template tokens around one user message (system preamble, role markers, the generation
    /// prompt).
    pub first: u32,
    /// Extra template tokens for each further (assistant, user) pair; `None` when the template is
    /// not linear in the number of turns.
    pub per_turn: Option<u32>,
}

impl ChatShape {
    /// Measures the template through `counter`; `None` when it knows no template.
    pub fn measure(
        counter: &dyn TokenCounter,
        pool: &WordPool,
    ) -> Result<Option<ChatShape>, TokenizerError> {
        let mut rng = rng_for(0xc4a7, 0);
        let mut text = |n: u32| {
            let mut s = String::new();
            pool.push_words(&mut rng, n, &mut s);
            s
        };
        let (a, b, c, d, e) = (text(10), text(37), text(5), text(23), text(8));
        let msgs = |contents: &[&String]| -> Vec<ChatMessage> {
            contents
                .iter()
                .enumerate()
                .map(|(i, c)| ChatMessage::text(if i % 2 == 0 { "user" } else { "assistant" }, *c))
                .collect()
        };
        let Some(one) = counter.count_chat(&msgs(&[&a]))? else {
            return Ok(None);
        };
        let first = one.checked_sub(10);
        let Some(other) = counter.count_chat(&msgs(&[&b]))? else {
            return Ok(None);
        };
        let Some(first) = first.filter(|f| other.checked_sub(37) == Some(*f)) else {
            return Err(TokenizerError::Count {
                source_name: counter.describe(),
                problem: format!(
                    "the chat template's overhead depends on the message length ({one} tokens for 10 words, {other} for 37), so exact chat lengths are not available"
                ),
            });
        };
        let three = counter.count_chat(&msgs(&[&a, &c, &d]))?;
        let five = counter.count_chat(&msgs(&[&a, &c, &d, &e, &b]))?;
        let per_turn = match (three, five) {
            (Some(t), Some(f)) => {
                let p3 = t.checked_sub(10 + 5 + 23 + first);
                let p5 = f.checked_sub(10 + 5 + 23 + 8 + 37 + first);
                p3.filter(|p| p5 == Some(2 * p))
            }
            _ => None,
        };
        Ok(Some(ChatShape { first, per_turn }))
    }
}

/// Images attached to each chat request.
#[derive(Clone, Debug)]
pub struct ImageSettings {
    pub per_request: u32,
    pub source: ImageSource,
}

/// A synthetic workload: lengths from distributions, exact under the pool's tokenizer.
#[derive(Clone, Debug)]
pub struct SyntheticWorkload {
    pub pool: Arc<WordPool>,
    pub input: LengthDist,
    pub output: LengthDist,
    /// Chat requests (messages) instead of completions prompts.
    pub chat: bool,
    /// The chat template's shape, when known (exact chat lengths need it).
    pub chat_shape: Option<ChatShape>,
    /// The first `shared_prefix` tokens of every prompt's content are shared within a group.
    pub shared_prefix: u32,
    /// Number of distinct shared prefixes; request `i` uses prefix `i % prefix_groups`.
    pub prefix_groups: u32,
    /// Turns per conversation (1: single requests).
    pub turns: u32,
    /// Conversations interleaved in the request stream (so a turn's follow-up comes this many
    /// requests later).
    pub sessions: u32,
    pub images: Option<ImageSettings>,
    /// Seeds the lengths (and, unless `content_seed` differs, the text).
    pub seed: u64,
    /// Seeds the words, shared prefixes and images. Runs of one experiment vary it, so each run
    /// sends fresh text (no prefix-cache hits from the run before) with the same lengths.
    pub content_seed: u64,
    /// `sessions` was given by the user (else a run may set it to its concurrency).
    pub sessions_given: bool,
}

/// Stream ids that keep the RNG streams of different uses apart.
const PREFIX_STREAM: u64 = 0x7072_6566_6978_0000;
const TURN_STREAM: u64 = 0x7475_726e_0000_0000;
const CONTENT_STREAM: u64 = 0x636f_6e74_656e_7400;

impl SyntheticWorkload {
    /// Content words for a total of `tokens`, given the fixed tokens around the content.
    fn content_words(&self, tokens: u32, overhead: u32) -> u32 {
        tokens.saturating_sub(overhead).max(self.shared_prefix + 1)
    }

    fn prefix_text(&self, group: u64) -> String {
        let mut rng = rng_for(self.content_seed ^ PREFIX_STREAM, group);
        let mut s = String::new();
        self.pool.push_words(&mut rng, self.shared_prefix, &mut s);
        s
    }

    /// The text of one content of `words` words, starting with the shared prefix if any.
    fn content(&self, rng: &mut StdRng, words: u32, group: u64) -> String {
        let mut s = if self.shared_prefix > 0 {
            self.prefix_text(group)
        } else {
            String::new()
        };
        self.pool
            .push_words(rng, words.saturating_sub(self.shared_prefix), &mut s);
        s
    }

    /// Which conversation and turn request `index` is.
    fn conversation_of(&self, index: u64) -> (u64, u32) {
        if self.turns <= 1 {
            return (index, 0);
        }
        let s = self.sessions.max(1) as u64;
        let block = s * self.turns as u64;
        let (b, p) = (index / block, index % block);
        (b * s + p % s, (p / s) as u32)
    }

    /// Lengths of turn `t` of conversation `conv` (user tokens, answer tokens), and the RNG of
    /// its text.
    fn turn_lengths(&self, conv: u64, t: u32) -> (u32, u32, StdRng) {
        let mut rng = rng_for(self.seed ^ TURN_STREAM ^ ((t as u64) << 40), conv);
        let input = self.input.sample(&mut rng);
        let output = self.output.sample(&mut rng);
        let text = rng_for(
            self.content_seed ^ CONTENT_STREAM ^ ((t as u64) << 40),
            conv,
        );
        (input, output, text)
    }

    fn attach_images(&self, index: u64, text: String) -> MessageContent {
        let Some(img) = &self.images else {
            return MessageContent::Text(text);
        };
        let mut parts = vec![ContentPart::Text { text }];
        for k in 0..img.per_request {
            parts.push(ContentPart::ImageUrl {
                image_url: ImageUrl {
                    url: img.source.data_url(self.content_seed, index, k),
                },
            });
        }
        MessageContent::Parts(parts)
    }
}

impl Workload for SyntheticWorkload {
    fn vary(&self, v: Variation) -> Arc<dyn Workload> {
        let mut w = self.clone();
        w.content_seed = v.content_seed;
        if let (Some(s), false) = (v.sessions, self.sessions_given) {
            w.sessions = s.max(1);
        }
        Arc::new(w)
    }

    fn costly(&self) -> bool {
        matches!(
            self.images,
            Some(ImageSettings {
                source: ImageSource::Generated { .. },
                ..
            })
        )
    }

    fn spec(&self, index: u64) -> RequestSpec {
        let (conv, turn) = self.conversation_of(index);
        let group = conv % self.prefix_groups.max(1) as u64;
        if !self.chat {
            let (input, output, mut rng) = self.turn_lengths(conv, 0);
            let words = self.content_words(input, self.pool.specials);
            let text = self.content(&mut rng, words, group);
            return RequestSpec {
                index,
                class: ClassId(0),
                prompt: Prompt::Text(text),
                input_tokens: Some(words + self.pool.specials),
                max_tokens: output,
                warmup: false,
            };
        }
        let first = self.chat_shape.map_or(0, |s| s.first);
        let mut messages = Vec::with_capacity(2 * turn as usize + 1);
        let mut total = 0u32;
        let mut max_tokens = 0;
        for t in 0..=turn {
            let (input, output, mut rng) = self.turn_lengths(conv, t);
            // The first message carries the template's fixed tokens; later ones are exact words.
            let words = if t == 0 {
                self.content_words(input, first)
            } else {
                input.max(1)
            };
            total += words;
            let text = if t == 0 {
                self.content(&mut rng, words, group)
            } else {
                let mut s = String::new();
                self.pool.push_words(&mut rng, words, &mut s);
                s
            };
            if t == turn {
                messages.push(ChatMessage {
                    role: "user".into(),
                    content: self.attach_images(index, text),
                });
                max_tokens = output;
            } else {
                messages.push(ChatMessage::text("user", text));
                let mut answer = String::new();
                self.pool.push_words(&mut rng, output, &mut answer);
                total += output;
                messages.push(ChatMessage::text("assistant", answer));
            }
        }
        let input_tokens = self.chat_shape.and_then(|s| {
            let extra = if turn == 0 {
                Some(0)
            } else {
                s.per_turn.map(|p| p * turn)
            };
            extra.map(|e| total + s.first + e)
        });
        RequestSpec {
            index,
            class: ClassId(0),
            prompt: Prompt::Messages(messages),
            input_tokens,
            max_tokens,
            warmup: false,
        }
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "synthetic: input {} tokens, output {} tokens",
            self.input, self.output
        );
        if self.shared_prefix > 0 {
            s += &format!(
                ", shared prefix {} tokens in {} group(s)",
                self.shared_prefix, self.prefix_groups
            );
        }
        if self.turns > 1 {
            s += &format!(
                ", {} turns per conversation, {} conversations interleaved",
                self.turns, self.sessions
            );
        }
        if let Some(i) = &self.images {
            s += &format!(", {} image(s) per request ({})", i.per_request, i.source);
        }
        s
    }
}
