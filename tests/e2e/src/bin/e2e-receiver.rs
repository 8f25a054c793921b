//! `e2e-receiver <port> <dir> <out.jsonl>`: the test receiver in its own process, so a
//! test can stop "the server" the way a real one stops (killed: every socket closes,
//! open connections included). Prints `listening on <url>`; exits when stdin closes.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use edetail_test_receiver::{Config, Receiver};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, dir, out] = args.as_slice() else {
        eprintln!("usage: e2e-receiver <port> <dir> <out.jsonl>");
        return ExitCode::from(2);
    };
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("e2e-receiver: `{port}` is not a port");
        return ExitCode::from(2);
    };
    let cfg = Config {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        dir: Some(PathBuf::from(dir)),
        out: PathBuf::from(out),
        token: None,
    };
    let r = match Receiver::start(cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("e2e-receiver: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", r.url());
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    r.stop();
    ExitCode::SUCCESS
}
