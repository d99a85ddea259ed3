//! The command-line reference: `--help` texts, snapshot-tested so that a flag cannot change
//! without the change being seen (README and docs quote these).

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args(args)
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn run_help() {
    insta::assert_snapshot!(help(&["run", "--help"]));
}

#[test]
fn serve_help() {
    insta::assert_snapshot!(help(&["serve", "--help"]));
}

#[test]
fn bad_flags_exit_two_and_name_the_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args(["run", "-c", "2", "-r", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--concurrency"));
    let out = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args(["run", "--duration", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("soon"));
}
