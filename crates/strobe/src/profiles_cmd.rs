//! `strobe profiles [show NAME]`.

use strobe_workload::profiles;

use crate::cli::ProfilesArgs;

pub fn profiles(a: ProfilesArgs) -> anyhow::Result<i32> {
    let find = |name: &str| profiles::find(name).map_err(|e| anyhow::anyhow!(e));
    match a.show.as_slice() {
        [] => print!("{}", profiles::list()),
        [show, name] if show == "show" => print!("{}", find(name)?.show()),
        [name] if profiles::find(name).is_ok() => print!("{}", find(name)?.show()),
        other => anyhow::bail!(
            "usage: strobe profiles [show NAME]; got `{}`",
            other.join(" ")
        ),
    }
    Ok(crate::exit::OK)
}

/// `strobe sweep --list`: the sweep presets.
pub fn presets() {
    println!("Sweep presets (strobe sweep --preset NAME; flags override their settings):");
    for p in strobe_experiment::presets::PRESETS {
        println!("  {:<18} {}", p.name, p.about);
        if !p.axes.is_empty() {
            println!("  {:<18} axes: {}", "", p.axes.join("  "));
        }
    }
}
