//! Configuration: command-line flags, `EDETAIL_*` environment variables and an
//! optional TOML file (`--config FILE`, or `<data-dir>/edetail.toml` when present).
//! Precedence: flag > environment > file > default.

use std::path::{Path, PathBuf};

use edetail_format::signature::{PublicKey, parse_trusted_keys};
use serde::Deserialize;

/// `edetail serve` options (also used by the `edetail-server` binary).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TCP port (default 8080; 0 picks a free port).
    #[arg(long, env = "EDETAIL_PORT")]
    pub port: Option<u16>,
    /// Address to bind (default 127.0.0.1).
    #[arg(long, env = "EDETAIL_BIND")]
    pub bind: Option<String>,
    /// Data directory: SQLite database, admin-token file (default `edetail-data`).
    #[arg(long, env = "EDETAIL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://user@host/db`); SQLite in the data dir when absent.
    #[arg(long, env = "EDETAIL_DATABASE")]
    pub database: Option<String>,
    /// PostgreSQL schema to use (created if missing); default `public`.
    #[arg(long, env = "EDETAIL_PG_SCHEMA")]
    pub pg_schema: Option<String>,
    /// Directory of the runtime shell served at /app/ (default `dist/www`).
    #[arg(long, env = "EDETAIL_WWW")]
    pub www: Option<PathBuf>,
    /// Public base URL printed in share links (default http://<bind>:<port>).
    #[arg(long, env = "EDETAIL_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// TOML configuration file.
    #[arg(long, env = "EDETAIL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long, env = "EDETAIL_LOG_JSON")]
    pub log_json: bool,
    /// Log level: error, warn, info, debug, trace (default info).
    #[arg(long, env = "EDETAIL_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Most ingest batches written concurrently; more get 429 (default 256).
    #[arg(long, env = "EDETAIL_MAX_CONCURRENT_BATCHES")]
    pub max_concurrent_batches: Option<usize>,
    /// Failed authentications allowed per client IP per minute before 429 (default 20; 0 = no limit).
    #[arg(long, env = "EDETAIL_AUTH_FAILURES_PER_MINUTE")]
    pub auth_failures_per_minute: Option<u32>,
    /// Trusted bundle-signing public keys: a file with one `ed25519:...` key per line
    /// (`#` comments allowed). Publishing is refused while no key is trusted.
    #[arg(long, env = "EDETAIL_TRUSTED_KEYS", value_name = "FILE")]
    pub trusted_keys: Option<PathBuf>,
    /// Delete raw events older than this many days (rollups are kept); default: keep all.
    #[arg(long, env = "EDETAIL_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Close a session without `session_end` after this many seconds with no new event
    /// (its drop-off and path are then counted); default 1800 (30 min).
    #[arg(long, env = "EDETAIL_SESSION_IDLE_SECS")]
    pub session_idle_secs: Option<u64>,
    /// How often the idle-session close job runs, in seconds (default 60).
    #[arg(long, env = "EDETAIL_SESSION_CLOSE_INTERVAL_SECS")]
    pub session_close_interval_secs: Option<u64>,
}

/// The TOML file's keys (all optional), same names as the flags with `_`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub port: Option<u16>,
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub pg_schema: Option<String>,
    pub www: Option<PathBuf>,
    pub public_url: Option<String>,
    pub log_json: Option<bool>,
    pub log_level: Option<String>,
    pub max_concurrent_batches: Option<usize>,
    pub auth_failures_per_minute: Option<u32>,
    /// Trusted signing keys inline (`["ed25519:..."]`); added to `trusted_keys_file`.
    pub trusted_keys: Option<Vec<String>>,
    /// A trusted-keys file (one key per line).
    pub trusted_keys_file: Option<PathBuf>,
    pub retention_days: Option<u32>,
    pub session_idle_secs: Option<u64>,
    pub session_close_interval_secs: Option<u64>,
}

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub bind: String,
    pub data_dir: PathBuf,
    pub database: Option<String>,
    pub pg_schema: Option<String>,
    pub www: PathBuf,
    pub public_url: Option<String>,
    pub log_json: bool,
    pub log_level: String,
    pub max_concurrent_batches: usize,
    /// Failed authentications per client IP per minute before 429 (0 = no limit).
    pub auth_failures_per_minute: u32,
    /// Public keys whose bundle signatures publish accepts (none: publish refuses).
    pub trusted_keys: Vec<PublicKey>,
    /// Raw events older than this many days are deleted (rollups kept); None keeps all.
    pub retention_days: Option<u32>,
    /// A session without `session_end` is closed after this long with no new event.
    pub session_idle: std::time::Duration,
    /// How often the idle-session close job runs.
    pub session_close_every: std::time::Duration,
}

impl Config {
    /// Defaults for tests and benchmarks: SQLite in `data_dir`, a free port on loopback,
    /// and the built-in TEST signing key trusted
    /// ([`crate::bundles::test_public_key`], which signs
    /// [`crate::bundles::sample_bundle`]). Its secret is in the source: never use
    /// this for a real server (`ServeArgs::resolve` never trusts it).
    pub fn for_dir(data_dir: &Path) -> Config {
        Config {
            port: 0,
            bind: "127.0.0.1".into(),
            data_dir: data_dir.to_path_buf(),
            database: None,
            pg_schema: None,
            www: PathBuf::from("dist/www"),
            public_url: None,
            log_json: false,
            log_level: "warn".into(),
            max_concurrent_batches: 256,
            auth_failures_per_minute: 20,
            trusted_keys: vec![crate::bundles::test_public_key()],
            retention_days: None,
            session_idle: crate::sessions::DEFAULT_IDLE,
            session_close_every: crate::sessions::DEFAULT_INTERVAL,
        }
    }
}

fn read_trusted_keys(path: &Path) -> Result<Vec<PublicKey>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::TrustedKeys(path.to_path_buf(), e.to_string()))?;
    parse_trusted_keys(&text)
        .map_err(|e| ConfigError::TrustedKeys(path.to_path_buf(), e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("config file {0}: {1}")]
    Parse(PathBuf, String),
    #[error("trusted keys {0}: {1}")]
    TrustedKeys(PathBuf, String),
}

impl ServeArgs {
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let data_dir_flag = self.data_dir.clone();
        let file_path = self.config.clone().or_else(|| {
            let p = data_dir_flag
                .clone()
                .unwrap_or_else(|| PathBuf::from("edetail-data"))
                .join("edetail.toml");
            p.is_file().then_some(p)
        });
        let file = match &file_path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| ConfigError::Read(p.clone(), e))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError::Parse(p.clone(), e.to_string()))?
            }
            None => FileConfig::default(),
        };
        // Flag/env file replaces the config file's keys; the config file's inline list
        // and file are combined.
        let trusted_keys = match &self.trusted_keys {
            Some(p) => read_trusted_keys(p)?,
            None => {
                let mut keys = Vec::new();
                if let Some(p) = &file.trusted_keys_file {
                    keys = read_trusted_keys(p)?;
                }
                for k in file.trusted_keys.iter().flatten() {
                    let k = PublicKey::parse(k).map_err(|e| {
                        ConfigError::Parse(file_path.clone().unwrap_or_default(), e.to_string())
                    })?;
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
                keys
            }
        };
        Ok(Config {
            trusted_keys,
            port: self.port.or(file.port).unwrap_or(8080),
            bind: self
                .bind
                .clone()
                .or(file.bind)
                .unwrap_or_else(|| "127.0.0.1".into()),
            data_dir: data_dir_flag
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("edetail-data")),
            database: self
                .database
                .clone()
                .or(file.database)
                .filter(|s| !s.is_empty()),
            pg_schema: self.pg_schema.clone().or(file.pg_schema),
            www: self
                .www
                .clone()
                .or(file.www)
                .unwrap_or_else(|| PathBuf::from("dist/www")),
            public_url: self.public_url.clone().or(file.public_url),
            log_json: self.log_json || file.log_json.unwrap_or(false),
            log_level: self
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            max_concurrent_batches: self
                .max_concurrent_batches
                .or(file.max_concurrent_batches)
                .unwrap_or(256)
                .max(1),
            auth_failures_per_minute: self
                .auth_failures_per_minute
                .or(file.auth_failures_per_minute)
                .unwrap_or(20),
            retention_days: self.retention_days.or(file.retention_days),
            session_idle: self.session_idle_secs.or(file.session_idle_secs).map_or(
                crate::sessions::DEFAULT_IDLE,
                std::time::Duration::from_secs,
            ),
            session_close_every: self
                .session_close_interval_secs
                .or(file.session_close_interval_secs)
                .map_or(crate::sessions::DEFAULT_INTERVAL, |s| {
                    std::time::Duration::from_secs(s.max(1))
                }),
        })
    }
}

/// Install the global tracing subscriber (once; later calls are ignored).
pub fn init_logging(json: bool, level: &str) {
    let lvl = match level.to_ascii_lowercase().as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let b = tracing_subscriber::fmt()
        .with_max_level(lvl)
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "port = 9000\nbind = \"0.0.0.0\"\nlog_level = \"debug\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(p.clone()),
            port: Some(9100),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.port, 9100);
        assert_eq!(c.bind, "0.0.0.0");
        assert_eq!(c.log_level, "debug");
        std::fs::write(&p, "prot = 1\n").unwrap();
        let e = args.resolve().unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn trusted_keys_from_file_flag_and_inline() {
        let dir = tempfile::tempdir().unwrap();
        let a = PublicKey([1u8; 32]);
        let b = PublicKey([2u8; 32]);
        let keys = dir.path().join("keys.txt");
        std::fs::write(&keys, format!("# ops\n{a}\n")).unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            format!("trusted_keys_file = {keys:?}\ntrusted_keys = [\"{b}\"]\n"),
        )
        .unwrap();
        let mut args = ServeArgs {
            config: Some(cfg.clone()),
            ..Default::default()
        };
        assert_eq!(args.resolve().unwrap().trusted_keys, vec![a, b]);
        // The flag (or EDETAIL_TRUSTED_KEYS) replaces the config file's keys.
        let only_b = dir.path().join("b.txt");
        std::fs::write(&only_b, format!("{b}\n")).unwrap();
        args.trusted_keys = Some(only_b);
        assert_eq!(args.resolve().unwrap().trusted_keys, vec![b]);
        // None configured: empty (publish then refuses); the test key is never added.
        let none = ServeArgs {
            data_dir: Some(dir.path().join("nothing")),
            ..Default::default()
        };
        assert!(none.resolve().unwrap().trusted_keys.is_empty());
        // A bad key names the file and line.
        std::fs::write(&keys, "ed25519:AAAA\n").unwrap();
        args.trusted_keys = Some(keys);
        let e = args.resolve().unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
