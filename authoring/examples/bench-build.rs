//! `cargo run --release -p edetail-authoring --example bench-build -- <deck> [runs]`:
//! time full builds (compile + write the bundle directory + write the archive) of a
//! deck; prints min / median / max wall time over `runs` (default 7) after one warm-up.
//! Also reports on-CPU time of the (single) compiling thread from
//! `/proc/thread-self/schedstat` (Linux), which stays meaningful when other processes
//! compete for the cores. For peak memory run it under `/usr/bin/time -v` with runs = 1.
use std::time::Instant;

/// Nanoseconds this thread has spent on a CPU (Linux), if available.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(deck) = args.first() else {
        eprintln!("usage: bench-build <deck> [runs]");
        return std::process::ExitCode::from(2);
    };
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(7).max(1);
    let out = std::env::temp_dir().join(format!("edetail-bench-{}", std::process::id()));
    let opts = edetail_authoring::CompileOptions::new("2026-06-01");
    let mut compile_ms = Vec::new();
    let mut total_ms = Vec::new();
    let mut cpu_ms = Vec::new();
    let mut slides = 0;
    for i in 0..=runs {
        let c0 = cpu_ns();
        let t0 = Instant::now();
        let c = match edetail_authoring::compile(std::path::Path::new(deck), &opts) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::from(2);
            }
        };
        let t1 = Instant::now();
        let Some(b) = &c.bundle else {
            eprint!("{}", edetail_authoring::render_human(&c.diagnostics, false));
            return std::process::ExitCode::from(1);
        };
        slides = b.slides.len();
        let w =
            edetail_authoring::write_bundle_dir(b, &c.assets, &out.join("dir")).and_then(|_| {
                edetail_authoring::write_archive(b, &c.assets, &out.join("deck.edetail"))
            });
        if let Err(e) = w {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
        let t2 = Instant::now();
        let c2 = cpu_ns();
        if i > 0 || runs == 1 {
            if let (Some(a), Some(b)) = (c0, c2) {
                cpu_ms.push(b.saturating_sub(a) as f64 / 1e6);
            }
            compile_ms.push((t1 - t0).as_secs_f64() * 1e3);
            total_ms.push((t2 - t0).as_secs_f64() * 1e3);
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2], v[v.len() - 1])
    };
    let (cmin, cmed, cmax) = stats(&mut compile_ms);
    let (tmin, tmed, tmax) = stats(&mut total_ms);
    println!("slides={slides} runs={}", compile_ms.len());
    println!("compile      min {cmin:.1} ms  median {cmed:.1} ms  max {cmax:.1} ms");
    println!("compile+write min {tmin:.1} ms  median {tmed:.1} ms  max {tmax:.1} ms  (wall)");
    if !cpu_ms.is_empty() {
        let (pmin, pmed, pmax) = stats(&mut cpu_ms);
        println!("compile+write min {pmin:.1} ms  median {pmed:.1} ms  max {pmax:.1} ms  (on-CPU)");
    }
    std::process::ExitCode::SUCCESS
}
