//! `strobe profiles [show NAME]`.

use std::fmt::Write as _;
use strobe_core::Api;
use strobe_workload::profiles::{self, InputLen, Profile};

use crate::cli::ProfilesArgs;

pub fn profiles(a: ProfilesArgs) -> anyhow::Result<i32> {
    match a.show.as_slice() {
        [] => {
            println!(
                "{:<14} {:<12} {:<26} {:<26} load",
                "profile", "api", "input tokens", "output tokens"
            );
            for p in profiles::PROFILES {
                println!(
                    "{:<14} {:<12} {:<26} {:<26} {}",
                    p.name,
                    api(p),
                    input(p),
                    p.output,
                    load(p)
                );
            }
            println!("\n`strobe profiles show NAME` for details; `strobe run --profile NAME` runs one (flags override its values).");
        }
        [show, name] if show == "show" => print!(
            "{}",
            show_one(profiles::find(name).map_err(|e| anyhow::anyhow!(e))?)
        ),
        [name] if profiles::find(name).is_ok() => print!(
            "{}",
            show_one(profiles::find(name).map_err(|e| anyhow::anyhow!(e))?)
        ),
        other => anyhow::bail!(
            "usage: strobe profiles [show NAME]; got `{}`",
            other.join(" ")
        ),
    }
    Ok(crate::exit::OK)
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

fn show_one(p: &Profile) -> String {
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
