//! `cargo xtask fuzz [--runs N] [--jobs J] [--sanitizer address|none] [target ...]`:
//! the long fuzz run of issue #5, repeatable by anyone.
//!
//! Builds the cargo-fuzz crate in `fuzz/` (nightly toolchain; installs `cargo-fuzz` if it
//! is missing), then runs every target (or the ones named) for exactly `N` executions
//! (libFuzzer `-runs=N`, default 1,000,000) starting from a scratch copy of its committed
//! seed corpus, so the repository's corpus is never polluted. With `--jobs J` > 1 the
//! executions are split over J independent libFuzzer processes (each `N/J` runs, seeded
//! differently) running in parallel. Prints one line per target: executions, seconds,
//! exec/s, crashes. Any crash or failed property fails the command and leaves the
//! reproducer in `fuzz/artifacts/<target>/`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

const TARGETS: [&str; 5] = [
    "compile",
    "read_archive",
    "bundle_json",
    "decode_batch",
    "tokens",
];

struct Opts {
    runs: u64,
    jobs: u64,
    sanitizer: String,
    targets: Vec<String>,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        runs: 1_000_000,
        jobs: 1,
        sanitizer: "address".into(),
        targets: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--runs" => o.runs = value("--runs")?.replace('_', "").parse()?,
            "--jobs" => o.jobs = value("--jobs")?.parse::<u64>()?.max(1),
            "--sanitizer" => o.sanitizer = value("--sanitizer")?,
            t if TARGETS.contains(&t) => o.targets.push(t.to_string()),
            other => bail!(
                "unknown argument `{other}` (targets: {})",
                TARGETS.join(", ")
            ),
        }
    }
    if o.targets.is_empty() {
        o.targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    Ok(o)
}

fn has_cargo_fuzz() -> bool {
    Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// libFuzzer's final line: `Done 1000000 runs in 412 second(s)`.
fn done_runs(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|l| {
        l.strip_prefix("Done ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let root = workspace_root();
    let fuzz = root.join("fuzz");
    if !has_cargo_fuzz() {
        crate::cmd("cargo", &["install", "cargo-fuzz"])?;
    }
    let status = Command::new("cargo")
        .args([
            "+nightly",
            "fuzz",
            "build",
            "-O",
            "--sanitizer",
            &o.sanitizer,
        ])
        .current_dir(&fuzz)
        .status()
        .context("cargo +nightly fuzz build (is the nightly toolchain installed?)")?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status})");
    }
    let bin_dir = fuzz.join("target/x86_64-unknown-linux-gnu/release");
    let scratch = std::env::temp_dir().join(format!("edetail-fuzz-{}", std::process::id()));
    let mut report = Vec::new();
    for t in &o.targets {
        let corpus = scratch.join(t);
        std::fs::create_dir_all(&corpus)?;
        let seeds = fuzz.join("corpus").join(t);
        std::fs::create_dir_all(fuzz.join("artifacts").join(t))?;
        let start = Instant::now();
        let per_job = o.runs.div_ceil(o.jobs);
        let children = (0..o.jobs)
            .map(|j| {
                let log = scratch.join(format!("{t}-{j}.log"));
                Command::new(bin_dir.join(t))
                    .arg(&corpus)
                    .arg(&seeds)
                    .arg(format!("-runs={per_job}"))
                    .arg(format!("-seed={}", 1 + j))
                    .arg("-print_final_stats=1")
                    .arg(format!(
                        "-artifact_prefix={}/",
                        fuzz.join("artifacts").join(t).display()
                    ))
                    .current_dir(&fuzz)
                    // As `cargo fuzz run` does: the server's bundled SQLite trips
                    // ASan's ODR check (a false positive on its static tables).
                    .env("ASAN_OPTIONS", "detect_odr_violation=0")
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log)?)
                    .spawn()
                    .with_context(|| format!("starting {t} (built?)"))
                    .map(|c| (c, log))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut total = 0u64;
        let mut failed = Vec::new();
        for (mut child, log) in children {
            let status = child.wait()?;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            total += done_runs(&text).unwrap_or(0);
            if !status.success() {
                failed.push(log);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let line = format!(
            "{t:<13} {total:>10} execs  {secs:>8.1} s  {:>8.0} exec/s  crashes: {}",
            total as f64 / secs,
            failed.len()
        );
        eprintln!("{line}");
        report.push((line, failed));
    }
    println!(
        "\nfuzz: {} runs per target, {} job(s), sanitizer {}",
        o.runs, o.jobs, o.sanitizer
    );
    let mut bad = Vec::new();
    for (line, failed) in &report {
        println!("{line}");
        bad.extend(failed.iter().cloned());
    }
    if !bad.is_empty() {
        for log in &bad {
            eprintln!("--- {}", log.display());
            eprintln!("{}", tail(log));
        }
        bail!(
            "{} fuzz process(es) failed; reproducers in fuzz/artifacts/",
            bad.len()
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_final_count() {
        let log = "#1000 pulse\nDone 1000000 runs in 412 second(s)\nstat::number_of_executed_units: 1000000\n";
        assert_eq!(done_runs(log), Some(1_000_000));
        assert_eq!(done_runs("crashed\n"), None);
    }

    #[test]
    fn parses_options() {
        let o = parse(&["--runs".into(), "1_000".into(), "tokens".into()]).unwrap();
        assert_eq!((o.runs, o.jobs, o.targets.len()), (1_000, 1, 1));
        assert!(parse(&["nope".into()]).is_err());
        assert_eq!(parse(&[]).unwrap().targets.len(), TARGETS.len());
    }
}
