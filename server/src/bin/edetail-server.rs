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
    let cfg = match args.serve.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
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
