//! Workloads: what each request says, as a pure function of the seed and the request index.
//!
//! A [`Workload`] maps a request index to a [`RequestSpec`]. Index-addressed generation makes runs
//! reproducible whatever order workers ask in, and lets several processes share one stream.
//! This crate knows nothing about HTTP, schedules or timing.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strobe_core::{ClassId, Prompt, RequestSpec};

/// A seeded source of request specs.
pub trait Workload: Send + Sync {
    /// The spec of request `index`. The same workload and index always give the same spec.
    fn spec(&self, index: u64) -> RequestSpec;
    /// A one-line human description, for reports.
    fn describe(&self) -> String;
}

/// Common short English words; most tokenizers encode each (with its leading space) as one token,
/// so `n` words come close to `n` tokens. Exact lengths need a tokenizer (a later workload).
const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "over",
    "new",
    "sound",
    "take",
    "only",
    "little",
    "work",
    "know",
    "place",
    "year",
    "live",
    "me",
    "back",
    "give",
    "most",
    "very",
    "after",
    "thing",
    "our",
    "just",
    "name",
    "good",
    "sentence",
    "man",
    "think",
    "say",
    "great",
    "where",
    "help",
    "through",
    "much",
    "before",
    "line",
    "right",
    "too",
    "mean",
    "old",
    "any",
    "same",
    "tell",
    "boy",
    "follow",
    "came",
    "want",
    "show",
    "also",
    "around",
    "form",
    "three",
    "small",
    "set",
    "put",
    "end",
    "does",
    "another",
    "well",
    "large",
    "must",
    "big",
    "even",
    "such",
    "because",
    "turn",
    "here",
    "why",
    "ask",
    "went",
    "men",
    "read",
    "need",
    "land",
    "different",
    "home",
    "us",
    "move",
    "try",
    "kind",
    "hand",
    "picture",
    "again",
    "change",
    "off",
    "play",
    "spell",
    "air",
    "away",
    "animal",
    "house",
    "point",
    "page",
    "letter",
    "mother",
    "answer",
    "found",
    "study",
    "still",
    "learn",
    "should",
    "world",
    "high",
    "every",
    "near",
    "add",
    "food",
    "between",
    "own",
    "below",
    "country",
    "plant",
    "last",
    "school",
    "father",
    "keep",
    "tree",
    "never",
    "start",
    "city",
    "earth",
    "eye",
    "light",
    "thought",
    "head",
    "under",
    "story",
    "saw",
    "left",
    "few",
    "while",
    "along",
    "might",
    "close",
    "something",
    "seem",
    "next",
    "hard",
    "open",
    "example",
    "begin",
    "life",
    "always",
    "those",
];

/// Random words of a fixed count, and a fixed output length (`ignore_eos` makes it exact).
#[derive(Clone, Debug)]
pub struct RandomWorkload {
    pub input_words: u32,
    pub output_tokens: u32,
    pub seed: u64,
}

impl RandomWorkload {
    fn rng_for(&self, index: u64) -> StdRng {
        // splitmix64 of (seed, index): neighbouring indices get unrelated streams.
        let mut z = self
            .seed
            .wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        StdRng::seed_from_u64(z ^ (z >> 31))
    }
}

impl Workload for RandomWorkload {
    fn spec(&self, index: u64) -> RequestSpec {
        let mut rng = self.rng_for(index);
        let mut text = String::with_capacity(self.input_words as usize * 6);
        for i in 0..self.input_words {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(WORDS[rng.random_range(0..WORDS.len())]);
        }
        RequestSpec {
            index,
            class: ClassId(0),
            prompt: Prompt::Text(text),
            input_tokens: None,
            max_tokens: self.output_tokens,
            warmup: false,
        }
    }

    fn describe(&self) -> String {
        format!(
            "random: ~{} input words, {} output tokens, seed {}",
            self.input_words, self.output_tokens, self.seed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let a = RandomWorkload {
            input_words: 64,
            output_tokens: 8,
            seed: 7,
        };
        let b = RandomWorkload {
            seed: 8,
            ..a.clone()
        };
        for i in 0..50 {
            assert_eq!(a.spec(i), a.spec(i));
            assert_ne!(a.spec(i).prompt, b.spec(i).prompt);
        }
        assert_ne!(
            a.spec(0).prompt,
            a.spec(1).prompt,
            "prompts must differ per request"
        );
    }

    #[test]
    fn prompt_has_the_requested_word_count() {
        let w = RandomWorkload {
            input_words: 100,
            output_tokens: 8,
            seed: 1,
        };
        let Prompt::Text(t) = w.spec(5).prompt else {
            panic!()
        };
        assert_eq!(t.split(' ').count(), 100);
        assert_eq!(w.spec(5).max_tokens, 8);
    }
}
