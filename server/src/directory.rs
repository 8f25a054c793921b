//! The CRM physician directory import: CSV with a header naming `id`, `specialty`,
//! `institution`, `region`, `segment` (any order, case-insensitive; other columns are
//! ignored). Ids are pseudonymized before storage.

use crate::auth::Keys;
use crate::storage::HcpRecord;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CsvError {
    #[error("the CSV is empty")]
    Empty,
    #[error("the header has no `{0}` column")]
    MissingColumn(&'static str),
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: String },
}

/// Split CSV text into records (RFC 4180 quoting; `\n` or `\r\n` line ends).
pub fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let mut out = Vec::new();
    let mut rec = Vec::new();
    let mut field = String::new();
    let mut in_q = false;
    let mut line = 1usize;
    let mut rec_line = 1usize;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_q {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_q = false,
                '\n' => {
                    line += 1;
                    field.push(c)
                }
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => in_q = true,
            ',' => rec.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                rec.push(std::mem::take(&mut field));
                if !(rec.len() == 1 && rec[0].trim().is_empty()) {
                    out.push((rec_line, std::mem::take(&mut rec)));
                }
                rec.clear();
                line += 1;
                rec_line = line;
            }
            c => field.push(c),
        }
    }
    if in_q {
        return Err(CsvError::Line {
            line: rec_line,
            problem: "unterminated quoted field".into(),
        });
    }
    if any && (!field.is_empty() || !rec.is_empty()) {
        rec.push(field);
        out.push((rec_line, rec));
    }
    Ok(out)
}

/// Parse the directory CSV into pseudonymized records.
pub fn parse_directory(text: &str, keys: &Keys) -> Result<Vec<HcpRecord>, CsvError> {
    let recs = parse_csv(text.trim_start_matches('\u{feff}'))?;
    let mut it = recs.into_iter();
    let (_, header) = it.next().ok_or(CsvError::Empty)?;
    let col = |name: &'static str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or(CsvError::MissingColumn(name))
    };
    let (ci, cs, cin, cr, cg) = (
        col("id")?,
        col("specialty")?,
        col("institution")?,
        col("region")?,
        col("segment")?,
    );
    let mut out = Vec::new();
    for (line, r) in it {
        let get = |i: usize| r.get(i).map(|s| s.trim().to_string()).unwrap_or_default();
        let id = get(ci);
        if id.is_empty() {
            return Err(CsvError::Line {
                line,
                problem: "empty `id`".into(),
            });
        }
        if r.len() != header.len() {
            return Err(CsvError::Line {
                line,
                problem: format!("{} fields, the header has {}", r.len(), header.len()),
            });
        }
        out.push(HcpRecord {
            hcp: keys.pseudonymize(&id),
            specialty: get(cs),
            institution: get(cin),
            region: get(cr),
            segment: get(cg),
        });
    }
    Ok(out)
}

/// Quote a CSV field when needed.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_reordered() {
        let k = Keys::from_hex(&"11".repeat(32)).unwrap();
        let csv = "Segment,ID,specialty,institution,region\nA,h1,Cardiology,\"St. Mary's, Seoul\",Seoul\r\nB,h2,GP,\"Clinic \"\"X\"\"\",Busan\n\n";
        let r = parse_directory(csv, &k).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].institution, "St. Mary's, Seoul");
        assert_eq!(r[1].institution, "Clinic \"X\"");
        assert_eq!(r[1].segment, "B");
        assert_eq!(r[0].hcp, k.pseudonymize("h1"));
    }

    #[test]
    fn errors_are_precise() {
        let k = Keys::from_hex(&"11".repeat(32)).unwrap();
        assert_eq!(parse_directory("", &k), Err(CsvError::Empty));
        assert_eq!(
            parse_directory("id,specialty\n", &k),
            Err(CsvError::MissingColumn("institution"))
        );
        let e =
            parse_directory("id,specialty,institution,region,segment\nh1,a,b\n", &k).unwrap_err();
        assert_eq!(e.to_string(), "line 2: 3 fields, the header has 5");
        assert!(parse_directory("id,specialty,institution,region,segment\n\"h1,a", &k).is_err());
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
