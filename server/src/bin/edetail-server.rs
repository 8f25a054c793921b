//! `edetail-server`: the server alone (same options as `edetail serve`). Used by the
//! multi-process tests and the ingest benchmark; operators use `edetail serve`.
//! Prints `listening <base-url>` on stdout once it accepts connections.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "edetail-server", version, about = "edetail head-office server")]
struct Args {
    #[command(flatten)]
    serve: edetail_server::ServeArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut cfg = match args.serve.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // This binary is the test/benchmark fixture (operators run `edetail serve`, which
    // never does this): with no trusted key configured it trusts the built-in TEST
    // key, so harnesses can publish `bundles::sample_bundle` archives.
    if cfg.trusted_keys.is_empty() {
        eprintln!(
            "edetail-server: no trusted keys configured; trusting the built-in TEST signing key (tests and benchmarks only)"
        );
        cfg.trusted_keys = vec![edetail_server::bundles::test_public_key()];
    }
    let r = edetail_server::serve_blocking(cfg, |s| {
        let mut out = std::io::stdout().lock();
        if let Some(t) = &s.new_admin_token {
            let _ = writeln!(out, "admin-token {t}");
        }
        let _ = writeln!(out, "listening {}", s.base_url);
        let _ = out.flush();
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
