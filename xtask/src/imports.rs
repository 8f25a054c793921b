//! Short import names for the wasm module and its JS glue (release builds).
//!
//! wasm-bindgen names every import the module takes from its JS glue after the Rust
//! item plus a 16-hex-digit hash (`__wbg_addEventListener_70e3766f6252144d`), and the
//! same name is the key of the glue's import object. The ~250 names are ~9 KB in each
//! file, and the hashes do not compress: renaming them to short names (`a`, `b`, ...,
//! `aa`, ...) in both files saves ~7 KB gzipped of the first-slide transfer. Only the
//! import section of the wasm changes; the glue must hold each name exactly once (as
//! its import-object key), which is checked, so a future wasm-bindgen that uses a name
//! elsewhere makes the build fail instead of producing a broken pair.

use anyhow::{Context, Result, bail};

/// The module name wasm-bindgen gives the glue's imports.
const GLUE_MODULE: &[u8] = b"./edetail_runtime_bg.js";

/// Rename every import of [`GLUE_MODULE`] in `wasm` and its key in `js`; returns the
/// new wasm, the new glue and the number of names shortened.
pub fn shorten(wasm: &[u8], js: &str) -> Result<(Vec<u8>, String, usize)> {
    if wasm.get(..8) != Some(b"\0asm\x01\0\0\0".as_slice()) {
        bail!("not a wasm module (version 1)");
    }
    let mut out = wasm[..8].to_vec();
    let mut renames: Vec<(String, String)> = Vec::new();
    let mut pos = 8;
    while pos < wasm.len() {
        let start = pos;
        let id = wasm[pos];
        pos += 1;
        let size = leb(wasm, &mut pos)? as usize;
        let end = pos
            .checked_add(size)
            .filter(|e| *e <= wasm.len())
            .context("section runs past the end of the module")?;
        if id != 2 {
            out.extend_from_slice(&wasm[start..end]);
            pos = end;
            continue;
        }
        let mut body = Vec::with_capacity(size);
        let count = leb(wasm, &mut pos)?;
        put_leb(&mut body, count);
        for _ in 0..count {
            let module = name(wasm, &mut pos)?;
            let field = name(wasm, &mut pos)?;
            let desc_start = pos;
            skip_import_desc(wasm, &mut pos)?;
            let new = if module == GLUE_MODULE {
                let short = short_name(renames.len());
                renames.push((
                    String::from_utf8(field.to_vec()).context("import name is not UTF-8")?,
                    short.clone(),
                ));
                short.into_bytes()
            } else {
                field.to_vec()
            };
            put_leb(&mut body, module.len() as u64);
            body.extend_from_slice(module);
            put_leb(&mut body, new.len() as u64);
            body.extend_from_slice(&new);
            body.extend_from_slice(&wasm[desc_start..pos]);
        }
        if pos != end {
            bail!("import section has trailing bytes");
        }
        out.push(2);
        put_leb(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
    }
    let mut js = js.to_string();
    for (old, new) in &renames {
        let at = occurrences(&js, old);
        if at.len() != 1 {
            bail!(
                "import `{old}` occurs {} times in the JS glue (expected once, as its key)",
                at.len()
            );
        }
        js.replace_range(at[0]..at[0] + old.len(), new);
    }
    Ok((out, js, renames.len()))
}

/// `a`..`z`, `A`..`Z`, then two letters, ...: never a JS keyword or a digit-led name.
/// Distinct for distinct `n`.
fn short_name(mut n: usize) -> String {
    const AL: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut s = Vec::new();
    loop {
        s.push(AL[n % AL.len()]);
        n /= AL.len();
        if n == 0 {
            break;
        }
        n -= 1;
    }
    s.reverse();
    let s = String::from_utf8(s).unwrap_or_default();
    // Two-letter JS keywords; three-letter ones (`for`, `new`, ...) need > 2,800 imports.
    if matches!(s.as_str(), "do" | "if" | "in") {
        return format!("{s}_");
    }
    s
}

/// Byte offsets where `name` occurs as a whole identifier.
fn occurrences(js: &str, name: &str) -> Vec<usize> {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
    let b = js.as_bytes();
    js.match_indices(name)
        .map(|(i, _)| i)
        .filter(|&i| {
            let before = i.checked_sub(1).map(|j| b[j]);
            let after = b.get(i + name.len()).copied();
            !before.is_some_and(ident) && !after.is_some_and(ident)
        })
        .collect()
}

fn leb(b: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b.get(*pos).context("truncated LEB128")?;
        *pos += 1;
        if shift > 63 {
            bail!("LEB128 too long");
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
    }
}

fn put_leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn name<'a>(b: &'a [u8], pos: &mut usize) -> Result<&'a [u8]> {
    let len = leb(b, pos)? as usize;
    let s = b
        .get(*pos..*pos + len)
        .context("truncated name in the import section")?;
    *pos += len;
    Ok(s)
}

/// Skips an import descriptor: function, table, memory, global or tag.
fn skip_import_desc(b: &[u8], pos: &mut usize) -> Result<()> {
    let kind = *b.get(*pos).context("truncated import")?;
    *pos += 1;
    let limits = |pos: &mut usize| -> Result<()> {
        let flags = leb(b, pos)?;
        leb(b, pos)?;
        if flags & 1 != 0 {
            leb(b, pos)?;
        }
        Ok(())
    };
    match kind {
        0 => {
            leb(b, pos)?;
        }
        1 => {
            *pos += 1; // reference type
            limits(pos)?;
        }
        2 => limits(pos)?,
        3 => *pos += 2, // value type, mutability
        4 => {
            *pos += 1; // attribute
            leb(b, pos)?;
        }
        k => bail!("unknown import kind {k}"),
    }
    if *pos > b.len() {
        bail!("truncated import");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module importing two functions from the glue, one from elsewhere, a memory
    /// and a table, plus a custom section after the imports.
    fn module() -> Vec<u8> {
        let mut imports = vec![5u8];
        let mut import = |module: &str, field: &str, desc: &[u8]| {
            imports.push(module.len() as u8);
            imports.extend_from_slice(module.as_bytes());
            imports.push(field.len() as u8);
            imports.extend_from_slice(field.as_bytes());
            imports.extend_from_slice(desc);
        };
        import(
            "./edetail_runtime_bg.js",
            "__wbg_foo_0123456789abcdef",
            &[0, 0],
        );
        import("env", "keep_me", &[0, 0]);
        import("./edetail_runtime_bg.js", "__wbindgen_init_table", &[0, 1]);
        import("env", "memory", &[2, 1, 1, 2]);
        import("env", "table", &[1, 0x6f, 0, 4]);
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]); // type section: () -> ()
        m.push(2);
        put_leb(&mut m, imports.len() as u64);
        m.extend_from_slice(&imports);
        m.extend_from_slice(&[0, 3, 1, b'x', 7]); // custom section "x"
        m
    }

    const JS: &str = "const i={__proto__:null,__wbg_foo_0123456789abcdef:function(e){return e},\
                      __wbindgen_init_table:function(){o.__wbindgen_init_table_x()}};";

    #[test]
    fn renames_glue_imports_in_both_files_and_keeps_the_rest() {
        let (wasm, js, n) = shorten(&module(), JS).expect("shorten");
        assert_eq!(n, 2);
        assert_eq!(
            js,
            "const i={__proto__:null,a:function(e){return e},\
             b:function(){o.__wbindgen_init_table_x()}};"
        );
        let text = String::from_utf8_lossy(&wasm);
        assert!(!text.contains("__wbg_foo"));
        assert!(text.contains("keep_me") && text.contains("memory") && text.contains("table"));
        // Still a well-formed module: sections re-parse and the custom section survives.
        let (again, _, n2) = shorten(&wasm, "const i={a:1,b:2}").expect("re-parse");
        assert_eq!(n2, 2);
        assert_eq!(again, wasm);
        assert!(wasm.ends_with(&[0, 3, 1, b'x', 7]));
    }

    #[test]
    fn refuses_a_glue_that_uses_a_name_twice_or_not_at_all() {
        let twice = format!("{JS} x.__wbg_foo_0123456789abcdef();");
        assert!(shorten(&module(), &twice).is_err());
        let missing = JS.replace("__wbindgen_init_table:", "other:");
        assert!(shorten(&module(), &missing).is_err());
        assert!(shorten(b"not wasm", JS).is_err());
        let mut truncated = module();
        truncated.truncate(30);
        assert!(shorten(&truncated, JS).is_err());
    }

    #[test]
    fn short_names_are_distinct_identifiers() {
        let names: Vec<String> = (0..3000).map(short_name).collect();
        let set: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(set.len(), names.len());
        assert_eq!(
            (names[0].as_str(), names[51].as_str(), names[52].as_str()),
            ("a", "Z", "aa")
        );
        for n in &names {
            assert!(!matches!(
                n.as_str(),
                "do" | "if" | "in" | "for" | "new" | "try" | "var" | "let"
            ));
            assert!(n.as_bytes()[0].is_ascii_alphabetic());
        }
    }
}
