//! `edetail keygen`, `edetail build --sign-key` and `edetail sign`: key files, and
//! `bundle.sig` in bundle directories and archives that verifies with the key.
//! Run with `cargo test -p edetail --test signing`.

use std::path::Path;
use std::process::{Command, Output};

use edetail_format::signature::{PublicKey, SignatureError, crypto, parse_trusted_keys};

fn edetail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edetail"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("EDETAIL_SIGNING_KEY")
        .output()
        .expect("run edetail")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn keygen(dir: &Path, name: &str) -> PublicKey {
    let o = edetail(&["keygen", "--out", &s(dir), "--name", name]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let pub_text = std::fs::read_to_string(dir.join(format!("{name}.pub"))).expect("pub");
    let keys = parse_trusted_keys(&pub_text).expect("a trusted-keys file");
    assert_eq!(keys.len(), 1);
    let stdout = text(&o.stdout);
    assert!(stdout.contains(&keys[0].to_text()), "{stdout}");
    assert!(stdout.contains(&keys[0].key_id()), "{stdout}");
    keys[0]
}

/// `bundle.sig` of a bundle (dir or archive) checked against `trusted`.
fn verify(bundle: &Path, trusted: &[PublicKey]) -> Result<PublicKey, SignatureError> {
    let loaded = edetail_authoring::read_bundle(bundle).expect("valid bundle");
    crypto::verify(loaded.signature.as_deref(), &loaded.hash, trusted)
}

#[test]
fn keygen_writes_a_private_key_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().expect("tmp");
    let public = keygen(tmp.path(), "ho");
    let key_path = tmp.path().join("ho.key");
    let secret = std::fs::read_to_string(&key_path).expect("key");
    assert!(secret.starts_with("ed25519-secret:"), "{secret}");
    let sk = edetail_format::signature::SecretKey::parse(&secret).expect("secret key");
    assert_eq!(
        sk.public_key(),
        public,
        "NAME.pub is NAME.key's public half"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "secret key mode {mode:o}");
    }
    // A second keygen with the same name must not destroy the key.
    let o = edetail(&["keygen", "--out", &s(tmp.path()), "--name", "ho"]);
    assert_eq!(code(&o), 2, "{}", text(&o.stdout));
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), secret);
    // Two keys differ.
    let other = keygen(tmp.path(), "other");
    assert_ne!(other, public);
}

#[test]
fn build_sign_key_and_sign_command() {
    let tmp = tempfile::tempdir().expect("tmp");
    let public = keygen(tmp.path(), "ho");
    let other = keygen(tmp.path(), "other");
    let key = s(&tmp.path().join("ho.key"));
    let deck = tmp.path().join("deck");
    assert_eq!(code(&edetail(&["new", &s(&deck)])), 0);

    // Directory, signed while building.
    let dir = tmp.path().join("signed");
    let o = edetail(&["build", &s(&deck), "-o", &s(&dir), "--sign-key", &key]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&public.key_id()));
    assert_eq!(verify(&dir, &[public]), Ok(public));
    assert_eq!(
        verify(&dir, &[other]),
        Err(SignatureError::UnknownKey(public.key_id()))
    );

    // Archive, signed through EDETAIL_SIGNING_KEY.
    let arch = tmp.path().join("deck.edetail");
    let o = Command::new(env!("CARGO_BIN_EXE_edetail"))
        .args(["build", &s(&deck), "--archive", "-o", &s(&arch)])
        .env("EDETAIL_SIGNING_KEY", &key)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(verify(&arch, &[public]), Ok(public));

    // Unsigned builds have no bundle.sig; rebuilding unsigned removes a stale one.
    let o = edetail(&["build", &s(&deck), "-o", &s(&dir)]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("signed: no"));
    assert!(!dir.join("bundle.sig").exists());
    assert_eq!(verify(&dir, &[public]), Err(SignatureError::Unsigned));
    let plain = tmp.path().join("plain.edetail");
    assert_eq!(
        code(&edetail(&[
            "build",
            &s(&deck),
            "--archive",
            "-o",
            &s(&plain)
        ])),
        0
    );
    assert_eq!(verify(&plain, &[public]), Err(SignatureError::Unsigned));

    // `edetail sign` fixes both forms; signing again with another key replaces it.
    for target in [&dir, &plain] {
        let o = edetail(&["sign", &s(target), "--key", &key]);
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        assert_eq!(verify(target, &[public]), Ok(public));
    }
    let before = edetail_authoring::read_bundle(&plain).unwrap();
    let o = edetail(&[
        "sign",
        &s(&plain),
        "--key",
        &s(&tmp.path().join("other.key")),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(verify(&plain, &[public, other]), Ok(other));
    let after = edetail_authoring::read_bundle(&plain).unwrap();
    assert_eq!(
        after.hash, before.hash,
        "signing does not change the bundle"
    );
    assert_eq!(after.assets, before.assets);

    // `sign` refuses a tampered bundle and a file that is not a key.
    let json = dir.join("bundle.json");
    let mut bytes = std::fs::read(&json).unwrap();
    let at = bytes.len() - 2;
    bytes[at] = b' ';
    std::fs::write(&json, bytes).unwrap();
    let o = edetail(&["sign", &s(&dir), "--key", &key]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("mismatch"), "{}", text(&o.stderr));
    let o = edetail(&["sign", &s(&plain), "--key", &s(&tmp.path().join("ho.pub"))]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("ed25519-secret:"),
        "{}",
        text(&o.stderr)
    );

    // Preview builds are never signed, even with a key.
    let prev = tmp.path().join("preview");
    let o = edetail(&[
        "build",
        &s(&deck),
        "--preview",
        "-o",
        &s(&prev),
        "--sign-key",
        &key,
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(!prev.join("bundle.sig").exists());
}
