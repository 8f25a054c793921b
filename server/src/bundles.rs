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

use std::path::Path;

use edetail_format::archive::{self, ReadError};
use edetail_format::bundle::{
    ASSETS_DIR, BUNDLE_HASH_FILE, BUNDLE_MANIFEST_FILE, Bundle, WindowStatus,
};
use edetail_format::signature::{
    PublicKey, SIGNATURE_FILE, SecretKey, SignatureError, crypto as sigcrypto,
};
use serde::Serialize;

use crate::storage::{NewVersion, VersionRecord};

/// Largest accepted archive (bytes).
pub const MAX_ARCHIVE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}")]
    Read(#[from] ReadError),
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

/// Read and verify a `.edetail` archive (tar of `bundle.json`, `bundle.sha256`,
/// `bundle.sig`, `assets/`) with the shared reader ([`edetail_format::archive`]: safe
/// paths, regular files only, every hash, no unlisted file), then what publishing
/// adds: not a preview, valid approval dates, window not ended, and the signature
/// against `trusted` (none trusted: refused).
pub fn verify_archive(
    bytes: &[u8],
    today: &str,
    trusted: &[PublicKey],
) -> Result<VerifiedBundle, PublishError> {
    let loaded = archive::read_archive(bytes, MAX_ARCHIVE_BYTES as u64)?;
    let bundle = loaded.bundle;
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
    sigcrypto::verify(loaded.signature.as_deref(), &loaded.hash, trusted)?;
    // Stored by content hash, in the order bundle.json lists them.
    let mut by_path = loaded.assets;
    let assets = bundle
        .assets
        .iter()
        .filter_map(|e| Some((e.sha256.clone(), by_path.remove(&e.path)?)))
        .collect();
    Ok(VerifiedBundle {
        hash: loaded.hash,
        bundle,
        manifest: loaded.manifest,
        assets,
        signature: loaded.signature.unwrap_or_default(),
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
/// present, `assets/`) into a deterministic tar archive ([`archive::tar_of`]).
pub fn pack_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    for name in [BUNDLE_MANIFEST_FILE, BUNDLE_HASH_FILE, SIGNATURE_FILE] {
        let p = dir.join(name);
        if name == SIGNATURE_FILE && !p.is_file() {
            continue;
        }
        files.insert(name.to_string(), std::fs::read(p)?);
    }
    let assets = dir.join(ASSETS_DIR);
    if assets.is_dir() {
        for e in std::fs::read_dir(&assets)? {
            let e = e?;
            if e.file_type()?.is_file() {
                let name = format!("{ASSETS_DIR}/{}", e.file_name().to_string_lossy());
                files.insert(name, std::fs::read(e.path())?);
            }
        }
    }
    archive::tar_of(&files)
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
        assert!(
            matches!(e, PublishError::Signature(SignatureError::NoTrustedKeys)),
            "{e}"
        );
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
        assert!(matches!(
            verify_archive(&unsigned, "2025-01-01", &[test_public_key()]).unwrap_err(),
            PublishError::Signature(SignatureError::Unsigned)
        ));
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
            Err(PublishError::Read(_))
        ));
    }
}
