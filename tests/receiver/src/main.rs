//! `edetail-test-receiver [--port N] [--bind ADDR] [--dir DIR] [--out FILE] [--token T]`
//!
//! Prints `listening on http://ADDR:PORT` once ready, then serves until killed
//! (or until stdin reaches end-of-file when `--exit-on-stdin-eof` is given, so a
//! parent test process that dies takes the receiver with it).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use edetail_test_receiver::{Config, Receiver};

const USAGE: &str = "usage: edetail-test-receiver [--port N] [--bind ADDR] [--dir DIR] [--out FILE] [--token TOKEN] [--exit-on-stdin-eof]";

fn parse(args: &[String]) -> Result<(Config, bool), String> {
    let mut ip: IpAddr = [127, 0, 0, 1].into();
    let mut port = 0u16;
    let mut dir = None;
    let mut out = PathBuf::from("events.jsonl");
    let mut token = None;
    let mut stdin_eof = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--port" => {
                let v = val("--port")?;
                port = v
                    .parse()
                    .map_err(|_| format!("--port: `{v}` is not a port"))?;
            }
            "--bind" => {
                let v = val("--bind")?;
                ip = v
                    .parse()
                    .map_err(|_| format!("--bind: `{v}` is not an IP address"))?;
            }
            "--dir" => dir = Some(PathBuf::from(val("--dir")?)),
            "--out" => out = PathBuf::from(val("--out")?),
            "--token" => token = Some(val("--token")?),
            "--exit-on-stdin-eof" => stdin_eof = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if let Some(d) = &dir
        && !d.is_dir()
    {
        return Err(format!("--dir: `{}` is not a directory", d.display()));
    }
    Ok((
        Config {
            addr: SocketAddr::new(ip, port),
            dir,
            out,
            token,
        },
        stdin_eof,
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cfg, stdin_eof) = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let out = cfg.out.clone();
    let receiver = match Receiver::start(cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "edetail-test-receiver: cannot start ({}): {e}",
                out.display()
            );
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", receiver.url());
    let _ = std::io::stdout().flush();
    if stdin_eof {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        receiver.stop();
    } else {
        loop {
            std::thread::park();
        }
    }
    ExitCode::SUCCESS
}
