//! Authors' commands: `new`, `check`, `build`, and signing: `keygen`, `sign`
//! (`build --sign-key` signs while building).
//!
//! Exit codes: 0 ok, 1 diagnostics with errors (or warnings with `--deny-warnings`),
//! 2 usage or I/O error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use edetail_authoring::{CompileOptions, Compiled, compile, render_human};
use edetail_format::signature::{SecretKey, crypto};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The deck folder (holding deck.toml).
    pub deck: PathBuf,
    /// Output format for diagnostics.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Treat warnings as errors (exit 1 when there are any).
    #[arg(long)]
    pub deny_warnings: bool,
    /// Accept an approval window that is expired or not yet valid (reported as
    /// warnings) and mark the bundle as a preview.
    #[arg(long)]
    pub preview: bool,
    /// The date to check the approval window against (YYYY-MM-DD, UTC); default today.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub today: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Scaffold a new deck that uses every feature.
    New {
        /// Folder to create (must be absent or empty).
        dir: PathBuf,
    },
    /// Check a deck and report problems with file:line:col.
    Check(CheckArgs),
    /// Check and build a deck into a verified bundle.
    Build {
        #[command(flatten)]
        check: CheckArgs,
        /// Output folder for the bundle directory (with --archive: the archive file,
        /// or a folder to put `<deck-id>-<version>.edetail` in).
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
        /// Write a single-file `.edetail` archive instead of a directory.
        #[arg(long)]
        archive: bool,
        /// Sign the bundle with this secret key file (from `edetail keygen`): writes
        /// `bundle.sig`. Preview builds are not signed.
        #[arg(long, env = "EDETAIL_SIGNING_KEY", value_name = "FILE")]
        sign_key: Option<PathBuf>,
    },
    /// Create an ed25519 signing key pair: NAME.key (secret, mode 0600) and NAME.pub.
    Keygen {
        /// Folder to write the key files in.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Base name of the key files.
        #[arg(long, default_value = "edetail-signing")]
        name: String,
    },
    /// Sign an already-built bundle (directory or .edetail archive): verifies it, then
    /// writes (or replaces) its `bundle.sig`.
    Sign {
        /// Bundle directory or .edetail archive.
        bundle: PathBuf,
        /// Secret key file (from `edetail keygen`).
        #[arg(long, env = "EDETAIL_SIGNING_KEY", value_name = "FILE")]
        key: PathBuf,
    },
}

fn parse_date(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not a date in YYYY-MM-DD form"))
    }
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::New { dir } => new(&dir),
        Command::Check(args) => {
            let compiled = compile_deck(&args)?;
            Ok(report(&args, &compiled, None))
        }
        Command::Build {
            check,
            out,
            archive,
            sign_key,
        } => {
            let key = sign_key.as_deref().map(read_secret_key).transpose()?;
            build(&check, &out, archive, key.as_ref())
        }
        Command::Keygen { out, name } => keygen(&out, &name),
        Command::Sign { bundle, key } => {
            let key = read_secret_key(&key)?;
            let hash =
                edetail_authoring::add_signature(&bundle, |h| crypto::sign(&key, h).to_json())
                    .with_context(|| format!("signing {}", bundle.display()))?;
            println!("signed: {}", bundle.display());
            println!("hash:   {hash}");
            println!("key id: {}", key.public_key().key_id());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Read a secret key file (`ed25519-secret:...`).
pub fn read_secret_key(path: &Path) -> anyhow::Result<SecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading signing key {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: signing key {} is readable by others (chmod 600 it)",
                path.display()
            );
        }
    }
    SecretKey::parse(&text).with_context(|| format!("signing key {}", path.display()))
}

fn keygen(out: &Path, name: &str) -> anyhow::Result<ExitCode> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        anyhow::bail!("--name must be a plain file name");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let key = SecretKey::generate()?;
    let public = key.public_key();
    let key_path = out.join(format!("{name}.key"));
    let pub_path = out.join(format!("{name}.pub"));
    let mut o = std::fs::OpenOptions::new();
    // Never overwrite a key: losing it would orphan every bundle it signed.
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    {
        use std::io::Write;
        let mut f = o
            .open(&key_path)
            .with_context(|| format!("creating {} (it must not exist)", key_path.display()))?;
        writeln!(f, "{}", key.to_text())
            .with_context(|| format!("writing {}", key_path.display()))?;
    }
    std::fs::write(&pub_path, format!("{public}\n"))
        .with_context(|| format!("writing {}", pub_path.display()))?;
    println!("secret key: {} (keep it private)", key_path.display());
    println!("public key: {} ({})", pub_path.display(), public);
    println!("key id:     {}", public.key_id());
    println!(
        "trust it on the server: edetail serve --trusted-keys {}",
        pub_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn new(dir: &Path) -> anyhow::Result<ExitCode> {
    let today = edetail_authoring::today_utc();
    edetail_authoring::scaffold::write(dir, &today)?;
    println!("created deck in {}", dir.display());
    println!(
        "next: edetail check {0}   then   edetail build {0} -o out/",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn compile_deck(args: &CheckArgs) -> anyhow::Result<Compiled> {
    let today = args
        .today
        .clone()
        .unwrap_or_else(edetail_authoring::today_utc);
    let opts = CompileOptions {
        today,
        preview: args.preview,
    };
    Ok(compile(&args.deck, &opts)?)
}

fn failed(args: &CheckArgs, c: &Compiled) -> bool {
    c.error_count() > 0 || (args.deny_warnings && c.warning_count() > 0)
}

/// Print diagnostics (and the bundle location) and choose the exit code.
fn report(args: &CheckArgs, c: &Compiled, built: Option<(&Path, &str)>) -> ExitCode {
    let fail = failed(args, c);
    match args.format {
        Format::Json => {
            let mut v = serde_json::json!({
                "ok": !fail,
                "errors": c.error_count(),
                "warnings": c.warning_count(),
                "diagnostics": c.diagnostics,
            });
            if let Some((path, hash)) = built {
                v["bundle"] =
                    serde_json::json!({ "path": path.display().to_string(), "hash": hash });
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Human => {
            if !c.diagnostics.is_empty() {
                let color =
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                eprint!("{}", render_human(&c.diagnostics, color));
            }
            if let Some((path, hash)) = built {
                println!("bundle: {}", path.display());
                println!("hash:   {hash}");
            } else if !fail {
                println!(
                    "ok: {} ({} warning{})",
                    args.deck.display(),
                    c.warning_count(),
                    if c.warning_count() == 1 { "" } else { "s" }
                );
            }
            if fail && args.deny_warnings && c.error_count() == 0 {
                eprintln!("warnings denied (--deny-warnings)");
            }
        }
    }
    if fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn build(
    args: &CheckArgs,
    out: &Path,
    archive: bool,
    key: Option<&SecretKey>,
) -> anyhow::Result<ExitCode> {
    let compiled = compile_deck(args)?;
    let bundle = match &compiled.bundle {
        Some(b) if !failed(args, &compiled) => b,
        _ => return Ok(report(args, &compiled, None)),
    };
    // Preview bundles are never signed: they cannot be published, and the player
    // presents them (marked as previews) without a signature.
    let preview = bundle.preview;
    let key = key.filter(|_| !preview);
    let sign = |hash: &str| key.map(|k| crypto::sign(k, hash).to_json());
    let (path, hash) = if archive {
        let file = if out.extension().is_some_and(|e| e == "edetail") {
            out.to_path_buf()
        } else {
            out.join(format!(
                "{}-{}.edetail",
                bundle.deck.id, bundle.deck.version
            ))
        };
        let hash = edetail_authoring::write_archive_signed(bundle, &compiled.assets, &file, sign)
            .with_context(|| format!("writing {}", file.display()))?;
        (file, hash)
    } else {
        let hash = edetail_authoring::write_bundle_dir_signed(bundle, &compiled.assets, out, sign)
            .with_context(|| format!("writing {}", out.display()))?;
        (out.to_path_buf(), hash)
    };
    let code = report(args, &compiled, Some((&path, &hash)));
    if args.format == Format::Human {
        match key {
            Some(k) => println!("signed: key {}", k.public_key().key_id()),
            None if preview => println!("signed: no (preview build)"),
            None => println!("signed: no (publishing needs a signature: `edetail sign`)"),
        }
    }
    Ok(code)
}
