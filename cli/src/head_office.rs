//! Head-office commands: `serve`, `publish`, `retire`, `token`, `share`, `hcp`,
//! `insights`, `audit`, `export`, `simulate`. Thin wrappers over `edetail_server`; every
//! command except `serve` talks to a running server over HTTP with an admin token.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use edetail_server::app::{ShareRequest, TokenRequest};
use edetail_server::client::Client;
use edetail_server::insights::FilterParams;
use edetail_server::report::{self, Format};

/// Where the server is and which admin token to use.
#[derive(clap::Args, Debug, Clone)]
pub struct Conn {
    /// Server base URL.
    #[arg(long, env = "EDETAIL_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Admin token (default: the contents of <data-dir>/admin-token).
    #[arg(long, env = "EDETAIL_TOKEN")]
    token: Option<String>,
    /// Data directory holding `admin-token` (used when --token is absent).
    #[arg(
        long = "token-dir",
        env = "EDETAIL_DATA_DIR",
        default_value = "edetail-data"
    )]
    token_dir: PathBuf,
}

impl Conn {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.token {
            return Ok(t.trim().to_string());
        }
        let p = self.token_dir.join("admin-token");
        let t = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "no --token given and cannot read {} (set EDETAIL_TOKEN)",
                p.display()
            )
        })?;
        Ok(t.trim().to_string())
    }
    fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.server, Some(&self.token()?)))
    }
}

/// Insight filters (query parameters of the insights API).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Filters {
    /// Deck id (omit for the overview of all decks).
    #[arg(long)]
    deck: Option<String>,
    #[arg(long)]
    version: Option<String>,
    /// First day, YYYY-MM-DD (UTC).
    #[arg(long)]
    from: Option<String>,
    /// Last day, YYYY-MM-DD (UTC).
    #[arg(long)]
    to: Option<String>,
    /// mr_led, remote or self_serve.
    #[arg(long)]
    channel: Option<String>,
    #[arg(long)]
    territory: Option<String>,
    #[arg(long)]
    specialty: Option<String>,
    #[arg(long)]
    region: Option<String>,
    #[arg(long)]
    institution: Option<String>,
    #[arg(long)]
    segment: Option<String>,
}

impl Filters {
    fn params(&self) -> FilterParams {
        FilterParams {
            deck: self.deck.clone(),
            version: self.version.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            channel: self.channel.clone(),
            territory: self.territory.clone(),
            specialty: self.specialty.clone(),
            region: self.region.clone(),
            institution: self.institution.clone(),
            segment: self.segment.clone(),
        }
    }
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run the head-office server (runtime shell, bundles, ingest, insights) on one port.
    Serve {
        #[command(flatten)]
        args: Box<edetail_server::ServeArgs>,
    },
    /// Upload a built bundle (directory or .edetail archive) to a server.
    Publish {
        /// Bundle directory (bundle.json, bundle.sha256, assets/) or .edetail archive.
        path: PathBuf,
        /// Distribute only to these territories (repeatable; default: all).
        #[arg(long)]
        territory: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Retire a published version: it disappears from catalogs.
    Retire {
        #[arg(long)]
        deck: String,
        #[arg(long)]
        version: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Manage admin and device tokens.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Create a self-serve share link for one physician and one deck.
    Share {
        #[arg(long)]
        deck: String,
        /// Physician id as in the CRM (pseudonymized by the server).
        #[arg(long)]
        hcp: String,
        /// Lifetime, e.g. 30d, 12h.
        #[arg(long, default_value = "30d")]
        expires: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Physician directory.
    Hcp {
        #[command(subcommand)]
        cmd: HcpCmd,
    },
    /// Print insights (overview, or one deck with --deck).
    Insights {
        #[command(flatten)]
        filters: Box<Filters>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Only this section (decks, trend; for a deck: summary, slides, links,
        /// interactions, answers, reactions, channels, trend, paths, questions).
        #[arg(long)]
        section: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print the audit log of admin actions (newest first).
    Audit {
        /// Most rows to print.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[command(flatten)]
        conn: Conn,
    },
    /// Export the CRM clickstream CSV (one row per slide view).
    Export {
        #[command(flatten)]
        filters: Box<Filters>,
        /// Output file (default stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Send weeks of realistic simulated engagement through the ingest API.
    Simulate {
        #[arg(long, default_value_t = 10)]
        reps: usize,
        #[arg(long, default_value_t = 200)]
        hcps: usize,
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Deck ids to use (repeatable; default: every deck in the catalog).
        #[arg(long)]
        deck: Vec<String>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Mean calls per rep per working day.
        #[arg(long, default_value_t = 4.0)]
        calls_per_day: f64,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Subcommand)]
pub enum TokenCmd {
    /// Create a token; the secret is printed once.
    Create {
        /// An admin token (publish, tokens, insights).
        #[arg(long, conflicts_with_all = ["rep", "territory"])]
        admin: bool,
        /// Rep id for a device token.
        #[arg(long, required_unless_present = "admin")]
        rep: Option<String>,
        #[arg(long)]
        territory: Option<String>,
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Revoke a token by id (the part after `edt.`).
    Revoke {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List tokens (ids and metadata; secrets are never stored).
    List {
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Subcommand)]
pub enum HcpCmd {
    /// Import the CRM directory CSV (id, specialty, institution, region, segment).
    Import {
        file: PathBuf,
        #[command(flatten)]
        conn: Conn,
    },
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Serve { args } => {
            let cfg = args.resolve()?;
            let www = cfg.www.clone();
            edetail_server::serve_blocking(cfg, |s| {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "edetail server on {} ({})", s.base_url, s.backend);
                if let Some(t) = &s.new_admin_token {
                    let _ = writeln!(
                        o,
                        "first admin token (shown once; also in {}):\n  {t}",
                        s.admin_token_file.display()
                    );
                }
                let _ = writeln!(
                    o,
                    "  presenter app  {}/app/   (shell from {})",
                    s.base_url,
                    www.display()
                );
                let _ = writeln!(o, "  insights       {}/insights", s.base_url);
                let _ = writeln!(
                    o,
                    "  ingest         {}{}",
                    s.base_url,
                    edetail_format::ingest::INGEST_PATH
                );
                let _ = o.flush();
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Publish {
            path,
            territory,
            conn,
        } => {
            let archive = if path.is_dir() {
                edetail_server::bundles::pack_dir(&path)
                    .with_context(|| format!("reading bundle directory {}", path.display()))?
            } else {
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
            };
            let r = conn.client()?.publish(&archive, &territory)?;
            println!(
                "{} {} {} (bundle {}, valid until {})",
                match r.outcome {
                    edetail_server::storage::PublishOutcome::Created => "published",
                    edetail_server::storage::PublishOutcome::AlreadyPublished =>
                        "already published",
                },
                r.deck_id,
                r.version,
                r.bundle_hash,
                r.valid_until
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Retire {
            deck,
            version,
            conn,
        } => {
            conn.client()?.retire(&deck, &version)?;
            println!("retired {deck} {version}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { cmd } => match cmd {
            TokenCmd::Create {
                admin,
                rep,
                territory,
                label,
                conn,
            } => {
                let t = conn.client()?.create_token(&TokenRequest {
                    kind: Some(if admin { "admin" } else { "device" }.into()),
                    rep,
                    territory,
                    label,
                })?;
                println!("{}", t.token);
                eprintln!(
                    "token id {} ({}); the secret above is not stored and cannot be shown again",
                    t.id,
                    t.kind.as_str()
                );
                Ok(ExitCode::SUCCESS)
            }
            TokenCmd::Revoke { id, conn } => {
                let id = id
                    .strip_prefix("edt.")
                    .map(|r| r.split('.').next().unwrap_or(r))
                    .unwrap_or(&id)
                    .to_string();
                conn.client()?.revoke_token(&id)?;
                println!("revoked {id}");
                Ok(ExitCode::SUCCESS)
            }
            TokenCmd::List { conn } => {
                let rows: Vec<Vec<String>> = conn
                    .client()?
                    .list_tokens()?
                    .into_iter()
                    .map(|t| {
                        vec![
                            t.id,
                            t.kind.as_str().to_string(),
                            t.rep.unwrap_or_default(),
                            t.territory.unwrap_or_default(),
                            t.label.unwrap_or_default(),
                            edetail_server::util::iso_datetime(t.created_at),
                            t.revoked_at
                                .map(edetail_server::util::iso_datetime)
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    report::table(
                        &[
                            "id",
                            "kind",
                            "rep",
                            "territory",
                            "label",
                            "created",
                            "revoked"
                        ],
                        &rows
                    )
                );
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Share {
            deck,
            hcp,
            expires,
            conn,
        } => {
            let l = conn.client()?.share(&ShareRequest {
                deck,
                hcp,
                expires: Some(expires),
            })?;
            println!("{}", l.url);
            eprintln!(
                "expires {}",
                edetail_server::util::iso_datetime(l.expires_at)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Hcp {
            cmd: HcpCmd::Import { file, conn },
        } => {
            let csv = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let r = conn.client()?.import_hcps(&csv)?;
            println!("imported {} physicians", r["imported"]);
            Ok(ExitCode::SUCCESS)
        }
        Command::Insights {
            filters,
            format,
            section,
            conn,
        } => {
            let c = conn.client()?;
            let p = filters.params();
            let out = if p.deck.is_some() {
                let r = c.deck_report(&p)?;
                if format == Format::Json {
                    println!("{}", report::json(&r));
                    return Ok(ExitCode::SUCCESS);
                }
                report::render(&report::deck_sections(&r), section.as_deref(), format)
            } else {
                let r = c.overview(&p)?;
                if format == Format::Json {
                    println!("{}", report::json(&r));
                    return Ok(ExitCode::SUCCESS);
                }
                report::render(&report::overview_sections(&r), section.as_deref(), format)
            };
            match out {
                Ok(s) => {
                    print!("{s}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => bail!(e),
            }
        }
        Command::Audit {
            limit,
            format,
            conn,
        } => {
            let rows = conn.client()?.audit(limit)?;
            if format == Format::Json {
                println!("{}", report::json(&rows));
                return Ok(ExitCode::SUCCESS);
            }
            match report::render(&report::audit_sections(&rows), None, format) {
                Ok(s) => {
                    print!("{s}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => bail!(e),
            }
        }
        Command::Export {
            filters,
            output,
            conn,
        } => {
            let csv = conn.client()?.clickstream(&filters.params())?;
            match output {
                Some(p) => {
                    std::fs::write(&p, &csv).with_context(|| format!("writing {}", p.display()))?;
                    eprintln!(
                        "wrote {} rows to {}",
                        csv.lines().count().saturating_sub(1),
                        p.display()
                    );
                }
                None => print!("{csv}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            reps,
            hcps,
            days,
            deck,
            seed,
            calls_per_day,
            conn,
        } => {
            let opts = edetail_server::simulate::SimOptions {
                server: conn.server.clone(),
                admin_token: conn.token()?,
                reps,
                hcps,
                days,
                decks: deck,
                seed,
                calls_per_day,
                ..Default::default()
            };
            let r = edetail_server::simulate::simulate(&opts, |line| eprintln!("{line}"))?;
            println!(
                "simulated {} sessions: {} events in {} batches ({} accepted, {} duplicate, {} rejected, {} retries) in {:.1} s",
                r.sessions,
                r.events,
                r.batches,
                r.accepted,
                r.duplicates,
                r.rejected,
                r.retries,
                r.elapsed_ms as f64 / 1000.0
            );
            Ok(if r.rejected > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
