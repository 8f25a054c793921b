//! Distribution: verifying uploaded bundles (`.edetail` tar archives), packing a
//! bundle directory into an archive, and catalog entries.
//!
//! Verification on publish: `bundle.sha256` must match the sha256 of `bundle.json`
//! ([`edetail_format::bundle::verify_and_parse`] also checks the schema version, the
//! structure and every slide's content hash); every listed asset must be present and
//! match its sha256 and size; no unlisted file may be present; preview bundles and
//! bundles whose approval window has ended are refused; finally `bundle.sig` must be
//! an ed25519 signature of the bundle hash by a trusted key
//! ([`edetail_format::signature`]).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use edetail_format::bundle::{
    ASSETS_DIR, BUNDLE_HASH_FILE, BUNDLE_MANIFEST_FILE, Bundle, WindowStatus, verify_and_parse,
    verify_asset,
};
use edetail_format::signature::{
    PublicKey, SIGNATURE_FILE, SecretKey, SignatureError, crypto as sigcrypto,
};
use serde::Serialize;

use crate::storage::{NewVersion, VersionRecord};

/// Largest accepted archive (bytes).
pub const MAX_ARCHIVE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PublishError {
    #[error("not a bundle archive: {0}")]
    Archive(String),
    #[error("archive has no `{0}`")]
    Missing(String),
    #[error("{0}")]
    Bundle(#[from] edetail_format::BundleError),
    #[error("asset `{0}` is listed in bundle.json but missing from the archive")]
    MissingAsset(String),
    #[error("file `{0}` is not listed in bundle.json")]
    Unlisted(String),
    #[error("preview bundles cannot be published (rebuild without --preview)")]
    Preview,
    #[error("approval {code} expired on {until}; a new approval is needed")]
    Expired { code: String, until: String },
    #[error("invalid approval dates `{0}`..`{1}`")]
    BadDates(String, String),
    #[error("signature refused: {0}")]
    Signature(#[from] SignatureError),
}

/// A verified bundle, ready to store.
#[derive(Debug)]
pub struct VerifiedBundle {
    pub hash: String,
    pub bundle: Bundle,
    pub manifest: Vec<u8>,
    pub assets: Vec<(String, Vec<u8>)>,
    /// `bundle.sig`, verified against a trusted key.
    pub signature: Vec<u8>,
}

/// Blob key under which a bundle's `bundle.sig` is stored.
pub fn signature_blob_key(bundle_hash: &str) -> String {
    format!("{bundle_hash}.sig")
}

fn norm(path: &str) -> String {
    path.trim_start_matches("./").to_string()
}

/// Read and verify a `.edetail` archive (tar of `bundle.json`, `bundle.sha256`,
/// `bundle.sig`, `assets/`): content first (hashes, preview, approval window, assets),
/// then the signature against `trusted` (none trusted: refused).
pub fn verify_archive(
    bytes: &[u8],
    today: &str,
    trusted: &[PublicKey],
) -> Result<VerifiedBundle, PublishError> {
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut ar = tar::Archive::new(bytes);
    let entries = ar
        .entries()
        .map_err(|e| PublishError::Archive(e.to_string()))?;
    let mut total = 0usize;
    for e in entries {
        let mut e = e.map_err(|e| PublishError::Archive(e.to_string()))?;
        let kind = e.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(PublishError::Archive(
                "only regular files are allowed".into(),
            ));
        }
        let path = e
            .path()
            .map_err(|e| PublishError::Archive(e.to_string()))?
            .to_string_lossy()
            .to_string();
        let path = norm(&path);
        if path.contains("..") || path.starts_with('/') {
            return Err(PublishError::Archive(format!("unsafe path `{path}`")));
        }
        let mut buf = Vec::new();
        e.read_to_end(&mut buf)
            .map_err(|e| PublishError::Archive(e.to_string()))?;
        total += buf.len();
        if total > MAX_ARCHIVE_BYTES {
            return Err(PublishError::Archive("archive too large".into()));
        }
        files.insert(path, buf);
    }
    if files.is_empty() {
        return Err(PublishError::Archive("empty or not a tar archive".into()));
    }
    let manifest = files
        .remove(BUNDLE_MANIFEST_FILE)
        .ok_or_else(|| PublishError::Missing(BUNDLE_MANIFEST_FILE.into()))?;
    let hash_file = files
        .remove(BUNDLE_HASH_FILE)
        .ok_or_else(|| PublishError::Missing(BUNDLE_HASH_FILE.into()))?;
    let expected = String::from_utf8_lossy(&hash_file).trim().to_lowercase();
    let signature = files.remove(SIGNATURE_FILE);
    let bundle = verify_and_parse(&manifest, &expected)?;
    if bundle.preview {
        return Err(PublishError::Preview);
    }
    let a = &bundle.approval;
    if crate::util::day_of_iso(&a.valid_from).is_none()
        || crate::util::day_of_iso(&a.valid_until).is_none()
    {
        return Err(PublishError::BadDates(
            a.valid_from.clone(),
            a.valid_until.clone(),
        ));
    }
    if a.window_status(today) == WindowStatus::Expired {
        return Err(PublishError::Expired {
            code: a.code.clone(),
            until: a.valid_until.clone(),
        });
    }
    let mut assets = Vec::with_capacity(bundle.assets.len());
    for entry in &bundle.assets {
        let bytes = files
            .remove(&entry.path)
            .ok_or_else(|| PublishError::MissingAsset(entry.path.clone()))?;
        verify_asset(entry, &bytes)?;
        assets.push((entry.sha256.clone(), bytes));
    }
    if let Some(extra) = files.keys().min() {
        return Err(PublishError::Unlisted(extra.clone()));
    }
    sigcrypto::verify(signature.as_deref(), &expected, trusted)?;
    Ok(VerifiedBundle {
        hash: expected,
        bundle,
        manifest,
        assets,
        signature: signature.unwrap_or_default(),
    })
}

impl VerifiedBundle {
    pub fn into_new_version(self, territories: Vec<String>, now: i64) -> NewVersion {
        let b = &self.bundle;
        let record = VersionRecord {
            bundle_hash: self.hash.clone(),
            deck_id: b.deck.id.clone(),
            version: b.deck.version.clone(),
            title: b.deck.title.clone(),
            locale: b.deck.locale.clone(),
            product: b.deck.product.clone(),
            approval_code: b.approval.code.clone(),
            valid_from: b.approval.valid_from.clone(),
            valid_until: b.approval.valid_until.clone(),
            territories,
            published_at: now,
            retired_at: None,
        };
        let mut blobs = vec![
            (signature_blob_key(&self.hash), self.signature),
            (self.hash, self.manifest),
        ];
        blobs.extend(self.assets);
        NewVersion { record, blobs }
    }
}

/// Pack a bundle directory (`bundle.json`, `bundle.sha256`, `bundle.sig` when
/// present, `assets/`) into a tar archive.
pub fn pack_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for name in [BUNDLE_MANIFEST_FILE, BUNDLE_HASH_FILE] {
        b.append_path_with_name(dir.join(name), name)?;
    }
    if dir.join(SIGNATURE_FILE).is_file() {
        b.append_path_with_name(dir.join(SIGNATURE_FILE), SIGNATURE_FILE)?;
    }
    let assets = dir.join(ASSETS_DIR);
    if assets.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(&assets)?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        for n in names {
            b.append_path_with_name(assets.join(&n), format!("{ASSETS_DIR}/{n}"))?;
        }
    }
    b.into_inner()
}

/// Pack in-memory files (path, bytes) into a tar archive.
pub fn pack_files(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        // Appending to an in-memory Vec cannot fail for valid relative paths.
        let _ = b.append_data(&mut h, path, *bytes);
    }
    b.into_inner().unwrap_or_default()
}

/// One catalog entry as served to devices and share links.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct CatalogEntry {
    pub deck_id: String,
    pub version: String,
    pub bundle_hash: String,
    pub title: String,
    pub locale: String,
    pub product: Option<String>,
    pub approval_code: String,
    pub valid_from: String,
    pub valid_until: String,
    /// Path of `bundle.json` on this server.
    pub url: String,
    pub published_at: i64,
}

impl CatalogEntry {
    pub fn from_record(v: &VersionRecord) -> CatalogEntry {
        CatalogEntry {
            deck_id: v.deck_id.clone(),
            version: v.version.clone(),
            bundle_hash: v.bundle_hash.clone(),
            title: v.title.clone(),
            locale: v.locale.clone(),
            product: v.product.clone(),
            approval_code: v.approval_code.clone(),
            valid_from: v.valid_from.clone(),
            valid_until: v.valid_until.clone(),
            url: format!("/bundles/{}/bundle.json", v.bundle_hash),
            published_at: v.published_at,
        }
    }
}

/// Whether a version belongs in a catalog today: not retired, approval not ended,
/// and (for a territory) distributed there.
pub fn listed(v: &VersionRecord, today: &str, territory: Option<&str>) -> bool {
    if v.retired_at.is_some() || today > v.valid_until.as_str() {
        return false;
    }
    match territory {
        Some(t) if !v.territories.is_empty() => v.territories.iter().any(|x| x == t),
        _ => true,
    }
}

/// Seed of the built-in TEST signing key. It is public (it is in the source), so a
/// server must never trust it in production: only [`crate::Config::for_dir`] (tests,
/// benchmarks) and the test/bench `edetail-server` binary (when no key is configured)
/// do. It signs [`sample_bundle`].
pub const TEST_SIGNING_SEED: [u8; 32] = *b"edetail TEST key - never trust!!";

/// The built-in TEST signing key (see [`TEST_SIGNING_SEED`]).
pub fn test_signing_key() -> SecretKey {
    SecretKey(TEST_SIGNING_SEED)
}

/// Public half of [`test_signing_key`].
pub fn test_public_key() -> PublicKey {
    test_signing_key().public_key()
}

/// Write a trusted-keys file trusting only the TEST key (for spawned test servers:
/// `--trusted-keys <path>`); returns its path.
pub fn write_test_trusted_keys(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let p = dir.join("test-trusted-keys.txt");
    std::fs::write(
        &p,
        format!(
            "# the built-in TEST key (edetail_server::bundles::TEST_SIGNING_SEED): tests only\n{}\n",
            test_public_key()
        ),
    )?;
    Ok(p)
}

/// `bundle.sig` bytes for `bundle_hash`, signed by `key`.
pub fn signature_file(key: &SecretKey, bundle_hash: &str) -> Vec<u8> {
    sigcrypto::sign(key, bundle_hash).to_json()
}

/// A small valid bundle for tests, benchmarks and demos, signed with the TEST key: `slides` main-flow slides
/// (the second one with a drill-down link, a popup and a quiz), one detail slide and
/// one asset. Returns the archive bytes and the parsed bundle.
pub fn sample_bundle(
    deck: &str,
    version: &str,
    valid_from: &str,
    valid_until: &str,
    slides: usize,
) -> (Vec<u8>, Bundle) {
    use edetail_format::bundle::*;
    let asset_bytes =
        format!("<svg xmlns='http://www.w3.org/2000/svg'><text>{deck}</text></svg>").into_bytes();
    let asset_sha = edetail_format::sha256_hex(&asset_bytes);
    let asset_path = format!("{ASSETS_DIR}/{asset_sha}.svg");
    let mut all = Vec::new();
    let n = slides.max(2);
    for i in 0..n {
        let id = format!("s{}", i + 1);
        let mut components = Vec::new();
        if i == 1 {
            components.push(Component::Link {
                id: format!("{id}-more"),
                target: "detail-1".into(),
                drilldown: true,
            });
            components.push(Component::Popup {
                id: format!("{id}-pop"),
                label: "Study design".into(),
                title: "Study design".into(),
                html: "<p>Randomised.</p>".into(),
            });
            components.push(Component::Question {
                id: "q1".into(),
                purpose: QuestionPurpose::Quiz,
                kind: QuestionKind::Single,
                prompt: "Which dose?".into(),
                options: vec![
                    AnswerOption {
                        id: "a".into(),
                        label: "5 mg".into(),
                    },
                    AnswerOption {
                        id: "b".into(),
                        label: "10 mg".into(),
                    },
                ],
                correct: vec!["b".into()],
                scale: None,
                explanation: None,
            });
        }
        all.push(Slide {
            id: id.clone(),
            title: format!("Slide {}", i + 1),
            key_message: Some(format!("Key message {}", i + 1)),
            tags: vec![],
            layout: "default".into(),
            mandatory: false,
            audience: vec![],
            detail: false,
            html: format!("<h1>Slide {}</h1>", i + 1),
            steps: 0,
            notes: None,
            components,
            references: vec![],
            content_hash: String::new(),
            source: None,
        });
    }
    all.push(Slide {
        id: "detail-1".into(),
        title: "Detail".into(),
        key_message: None,
        tags: vec![],
        layout: "default".into(),
        mandatory: false,
        audience: vec![],
        detail: true,
        html: "<p>Detail</p>".into(),
        steps: 0,
        notes: None,
        components: vec![],
        references: vec![],
        content_hash: String::new(),
        source: None,
    });
    for s in &mut all {
        s.content_hash = s.compute_content_hash();
    }
    let bundle = Bundle {
        schema_version: BUNDLE_SCHEMA_VERSION,
        deck: DeckMeta {
            id: deck.into(),
            title: format!("Deck {deck}"),
            version: version.into(),
            locale: "en-US".into(),
            product: Some("zentara".into()),
            therapeutic_area: None,
            channels: vec!["mr_led".into(), "self_serve".into()],
        },
        approval: Approval {
            code: "MLR-TEST-1".into(),
            valid_from: valid_from.into(),
            valid_until: valid_until.into(),
        },
        preview: false,
        tracking: Tracking::default(),
        theme: Theme {
            primary: "#123456".into(),
            accent: "#abcdef".into(),
            background: "#ffffff".into(),
            text: "#111111".into(),
            font_family: "sans-serif".into(),
            logo: None,
        },
        flow: vec![Section {
            id: "main".into(),
            title: "Main".into(),
            slides: all
                .iter()
                .filter(|s| !s.detail)
                .map(|s| s.id.clone())
                .collect(),
        }],
        slides: all,
        references: vec![],
        isi: Some(Isi {
            title: "ISI".into(),
            html: "<p>Safety</p>".into(),
        }),
        assets: vec![AssetEntry {
            path: asset_path.clone(),
            source: "logo.svg".into(),
            sha256: asset_sha,
            size: asset_bytes.len() as u64,
            media_type: "image/svg+xml".into(),
        }],
    };
    let json = bundle.to_json();
    let hash = edetail_format::sha256_hex(&json);
    let sig = signature_file(&test_signing_key(), &hash);
    let archive = pack_files(&[
        (BUNDLE_MANIFEST_FILE, &json),
        (BUNDLE_HASH_FILE, hash.as_bytes()),
        (SIGNATURE_FILE, &sig),
        (&asset_path, &asset_bytes),
    ]);
    (archive, bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_bundle_verifies() {
        let (ar, b) = sample_bundle("d", "1.0.0", "2020-01-01", "2099-12-31", 4);
        let v = verify_archive(&ar, "2025-01-01", &[test_public_key()]).unwrap();
        assert_eq!(v.bundle, b);
        assert_eq!(v.assets.len(), 1);
        assert!(!v.signature.is_empty());
    }

    #[test]
    fn refuses_unsigned_untrusted_and_no_keys() {
        let (ar, b) = sample_bundle("d", "1.0.0", "2020-01-01", "2099-12-31", 4);
        let other = SecretKey([1u8; 32]).public_key();
        assert!(matches!(
            verify_archive(&ar, "2025-01-01", &[other]),
            Err(PublishError::Signature(SignatureError::UnknownKey(_)))
        ));
        let e = verify_archive(&ar, "2025-01-01", &[]).unwrap_err();
        assert_eq!(e, PublishError::Signature(SignatureError::NoTrustedKeys));
        assert!(e.to_string().contains("no trusted signing keys"), "{e}");
        let json = b.to_json();
        let hash = edetail_format::sha256_hex(&json);
        let a = &b.assets[0];
        let asset = "<svg xmlns='http://www.w3.org/2000/svg'><text>d</text></svg>";
        let unsigned = pack_files(&[
            (BUNDLE_MANIFEST_FILE, &json),
            (BUNDLE_HASH_FILE, hash.as_bytes()),
            (&a.path, asset.as_bytes()),
        ]);
        assert_eq!(
            verify_archive(&unsigned, "2025-01-01", &[test_public_key()]).unwrap_err(),
            PublishError::Signature(SignatureError::Unsigned)
        );
    }

    #[test]
    fn refuses_expired_and_tampered() {
        let (ar, _) = sample_bundle("d", "1.0.0", "2020-01-01", "2021-12-31", 3);
        assert!(matches!(
            verify_archive(&ar, "2025-01-01", &[test_public_key()]),
            Err(PublishError::Expired { .. })
        ));
        assert!(matches!(
            verify_archive(b"not a tar", "2025-01-01", &[test_public_key()]),
            Err(PublishError::Archive(_))
        ));
    }
}
