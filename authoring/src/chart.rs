//! Charts rendered at build time: accessible SVG (`role="img"`, `<title>`, `<desc>`,
//! an `aria-label` on every mark) plus an HTML data table with the same numbers.

use std::fmt::Write as _;

use edetail_format::bundle::ChartKind;

use crate::html::esc;
use crate::i18n::Lang;

/// Parsed chart data.
pub struct ChartData {
    /// Header row: the category column name, then series names.
    pub header: Vec<String>,
    /// Category (row) labels.
    pub categories: Vec<String>,
    /// `values[row][series]`.
    pub values: Vec<Vec<f64>>,
    /// Raw cell text, for the data table (keeps the author's formatting).
    pub cells: Vec<Vec<String>>,
}

/// A chart data error: message and the 0-based line of the body where it occurred.
pub struct ChartError {
    pub message: String,
    pub line: usize,
}

fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && cur.trim().is_empty() {
            cur.clear();
            quoted = true;
            was_quoted = true;
        } else if c == ',' {
            out.push(if was_quoted {
                cur.clone()
            } else {
                cur.trim().to_string()
            });
            cur.clear();
            was_quoted = false;
        } else {
            cur.push(c);
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(if was_quoted {
        cur
    } else {
        cur.trim().to_string()
    });
    Ok(out)
}

fn number(s: &str) -> Option<f64> {
    // Accept a Unicode minus sign as authors paste it from papers.
    let s = s.trim().replace('\u{2212}', "-");
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Parse the CSV body of a chart.
pub fn parse(body: &str, kind: ChartKind) -> Result<ChartData, ChartError> {
    let mut rows = body
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((hline, header)) = rows.next() else {
        return Err(ChartError {
            message: "chart has no data: expected a CSV header row and data rows".into(),
            line: 0,
        });
    };
    let header = split_csv(header).map_err(|m| ChartError {
        message: m,
        line: hline,
    })?;
    let want = match kind {
        ChartKind::Forest => {
            if header.len() != 4 {
                return Err(ChartError {
                    message: format!(
                        "forest plot header has {} columns; expected 4: label,estimate,low,high",
                        header.len()
                    ),
                    line: hline,
                });
            }
            4
        }
        _ => {
            if header.len() < 2 {
                return Err(ChartError {
                    message: "chart header needs a category column and at least one series".into(),
                    line: hline,
                });
            }
            header.len()
        }
    };
    let mut data = ChartData {
        header,
        categories: Vec::new(),
        values: Vec::new(),
        cells: Vec::new(),
    };
    for (ln, row) in rows {
        let cells = split_csv(row).map_err(|m| ChartError {
            message: m,
            line: ln,
        })?;
        if cells.len() != want {
            return Err(ChartError {
                message: format!("row has {} columns; the header has {want}", cells.len()),
                line: ln,
            });
        }
        let mut vals = Vec::with_capacity(want - 1);
        for c in &cells[1..] {
            match number(c) {
                Some(v) => vals.push(v),
                None => {
                    return Err(ChartError {
                        message: format!("`{c}` is not a number"),
                        line: ln,
                    });
                }
            }
        }
        if kind == ChartKind::Forest && !(vals[1] <= vals[0] && vals[0] <= vals[2]) {
            return Err(ChartError {
                message: format!(
                    "forest row `{}`: expected low <= estimate <= high, found {} / {} / {}",
                    cells[0], vals[1], vals[0], vals[2]
                ),
                line: ln,
            });
        }
        data.categories.push(cells[0].clone());
        data.values.push(vals);
        data.cells.push(cells);
    }
    if data.categories.is_empty() {
        return Err(ChartError {
            message: "chart has a header but no data rows".into(),
            line: hline,
        });
    }
    Ok(data)
}

pub struct ChartSpec<'a> {
    pub id: &'a str,
    pub kind: ChartKind,
    pub title: &'a str,
    pub unit: &'a str,
    pub reference: f64,
    pub x_label: &'a str,
    pub palette: &'a [String],
    /// Language of the generated description, labels and caption.
    pub lang: Lang,
}

const W: f64 = 640.0;
const H: f64 = 360.0;

fn fmt_num(v: f64) -> String {
    let r = (v * 1000.0).round() / 1000.0;
    let s = format!("{r}");
    if s == "-0" { "0".into() } else { s }
}

/// Round-ish axis ticks covering [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).abs().max(1e-9);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(mag * 10.0);
    let start = (lo / step).floor() * step;
    let mut out = Vec::new();
    let mut t = start;
    while t <= hi + step * 0.5 && out.len() < 20 {
        out.push(t);
        t += step;
    }
    out
}

/// The SVG and the data table for a chart.
pub fn render(spec: &ChartSpec<'_>, data: &ChartData) -> String {
    let mut s = String::new();
    let title_id = format!("{}-title", spec.id);
    let desc_id = format!("{}-desc", spec.id);
    let unit = if spec.unit.is_empty() {
        String::new()
    } else {
        spec.unit.to_string()
    };
    let desc = describe(spec, data, &unit);
    let _ = write!(
        s,
        r#"<figure class="ed-chart" data-component="{id}" data-chart="{kind}"><svg class="ed-chart-svg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{tid} {did}"><title id="{tid}">{title}</title><desc id="{did}">{desc}</desc>"#,
        id = esc(spec.id),
        kind = kind_name(spec.kind),
        tid = esc(&title_id),
        did = esc(&desc_id),
        title = esc(spec.title),
        desc = esc(&desc),
    );
    match spec.kind {
        ChartKind::Bar | ChartKind::Line => series_chart(&mut s, spec, data, &unit),
        ChartKind::Forest => forest(&mut s, spec, data),
    }
    s.push_str("</svg>");
    // Data table fallback.
    let _ = write!(
        s,
        r#"<table class="ed-chart-data"><caption>{}</caption><thead><tr>"#,
        esc(&spec.lang.data_table_caption(spec.title))
    );
    for h in &data.header {
        let _ = write!(s, r#"<th scope="col">{}</th>"#, esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for row in &data.cells {
        let _ = write!(s, r#"<tr><th scope="row">{}</th>"#, esc(&row[0]));
        for c in &row[1..] {
            let _ = write!(s, "<td>{}</td>", esc(c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></figure>");
    s
}

fn kind_name(k: ChartKind) -> &'static str {
    match k {
        ChartKind::Bar => "bar",
        ChartKind::Line => "line",
        ChartKind::Forest => "forest",
    }
}

fn describe(spec: &ChartSpec<'_>, data: &ChartData, unit: &str) -> String {
    let lang = spec.lang;
    match spec.kind {
        ChartKind::Forest => lang.forest_desc(
            data.categories.len(),
            &fmt_num(spec.reference),
            &data
                .categories
                .iter()
                .zip(&data.values)
                .map(|(c, v)| lang.forest_row(c, &fmt_num(v[0]), &fmt_num(v[1]), &fmt_num(v[2])))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => {
            let series = &data.header[1..];
            format!(
                "{} {}",
                lang.series_chart_intro(
                    spec.kind == ChartKind::Bar,
                    &series.join(", "),
                    &data.header[0]
                ),
                series
                    .iter()
                    .enumerate()
                    .map(|(i, name)| format!(
                        "{name}: {}",
                        data.categories
                            .iter()
                            .zip(&data.values)
                            .map(|(c, v)| format!("{c} {}{unit}", fmt_num(v[i])))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    }
}

fn colour<'a>(spec: &'a ChartSpec<'_>, i: usize) -> &'a str {
    if spec.palette.is_empty() {
        "#555555"
    } else {
        &spec.palette[i % spec.palette.len()]
    }
}

fn series_chart(s: &mut String, spec: &ChartSpec<'_>, data: &ChartData, unit: &str) {
    let (left, right, top, bottom) = (56.0, 16.0, 16.0, 64.0);
    let pw = W - left - right;
    let ph = H - top - bottom;
    let all = data.values.iter().flatten().copied();
    let (mut lo, mut hi) = all.fold((0f64, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    if (hi - lo).abs() < 1e-12 {
        hi = lo + 1.0;
    }
    let t = ticks(lo, hi);
    lo = lo.min(t.first().copied().unwrap_or(lo));
    hi = hi.max(t.last().copied().unwrap_or(hi));
    let y = |v: f64| top + ph - (v - lo) / (hi - lo) * ph;
    // Axes and gridlines.
    s.push_str(r##"<g class="ed-chart-axis" aria-hidden="true" font-size="12" fill="#555555">"##);
    for tv in &t {
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#dddddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"##,
            x2 = left + pw,
            y = y(*tv),
            tx = left - 6.0,
            ty = y(*tv) + 4.0,
            label = esc(&format!("{}{unit}", fmt_num(*tv)))
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{left}" x2="{x2}" y1="{y0:.1}" y2="{y0:.1}" stroke="#333333"/>"##,
        x2 = left + pw,
        y0 = y(0f64.clamp(lo, hi))
    );
    let n = data.categories.len() as f64;
    let band = pw / n;
    for (i, c) in data.categories.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{y}" text-anchor="middle">{}</text>"#,
            esc(c),
            x = left + band * (i as f64 + 0.5),
            y = top + ph + 18.0
        );
    }
    // Legend.
    let series = &data.header[1..];
    for (j, name) in series.iter().enumerate() {
        let lx = left + (j as f64) * 160.0;
        let ly = H - 18.0;
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="{ry}" width="12" height="12" fill="{col}"/><text x="{tx}" y="{ly}">{}</text>"#,
            esc(name),
            ry = ly - 10.0,
            col = colour(spec, j),
            tx = lx + 16.0
        );
    }
    s.push_str("</g>");
    let y0 = y(0f64.clamp(lo, hi));
    match spec.kind {
        ChartKind::Bar => {
            let inner = band * 0.8;
            let bw = inner / series.len() as f64;
            for (j, name) in series.iter().enumerate() {
                let _ = write!(s, r#"<g class="ed-series" data-series="{}">"#, j + 1);
                for (i, c) in data.categories.iter().enumerate() {
                    let v = data.values[i][j];
                    let x = left + band * i as f64 + band * 0.1 + bw * j as f64;
                    let (ry, rh) = if v >= 0.0 {
                        (y(v), y0 - y(v))
                    } else {
                        (y0, y(v) - y0)
                    };
                    let _ = write!(
                        s,
                        r#"<rect x="{x:.1}" y="{ry:.1}" width="{w:.1}" height="{rh:.1}" fill="{col}" role="img" aria-label="{label}"/>"#,
                        w = (bw - 2.0).max(1.0),
                        col = colour(spec, j),
                        label = esc(&format!("{name}, {c}: {}{unit}", fmt_num(v)))
                    );
                }
                s.push_str("</g>");
            }
        }
        _ => {
            for (j, name) in series.iter().enumerate() {
                let pts: Vec<String> = (0..data.categories.len())
                    .map(|i| {
                        format!(
                            "{:.1},{:.1}",
                            left + band * (i as f64 + 0.5),
                            y(data.values[i][j])
                        )
                    })
                    .collect();
                let _ = write!(
                    s,
                    r#"<g class="ed-series" data-series="{n}"><polyline points="{p}" fill="none" stroke="{col}" stroke-width="2.5"/>"#,
                    n = j + 1,
                    p = pts.join(" "),
                    col = colour(spec, j)
                );
                for (i, c) in data.categories.iter().enumerate() {
                    let v = data.values[i][j];
                    let _ = write!(
                        s,
                        r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="4" fill="{col}" role="img" aria-label="{label}"/>"#,
                        cx = left + band * (i as f64 + 0.5),
                        cy = y(v),
                        col = colour(spec, j),
                        label = esc(&format!("{name}, {c}: {}{unit}", fmt_num(v)))
                    );
                }
                s.push_str("</g>");
            }
        }
    }
}

fn forest(s: &mut String, spec: &ChartSpec<'_>, data: &ChartData) {
    let (left, right, top, bottom) = (170.0, 24.0, 16.0, 48.0);
    let pw = W - left - right;
    let ph = H - top - bottom;
    let mut lo = spec.reference;
    let mut hi = spec.reference;
    for v in &data.values {
        lo = lo.min(v[1]);
        hi = hi.max(v[2]);
    }
    if (hi - lo).abs() < 1e-12 {
        hi = lo + 1.0;
    }
    let t = ticks(lo, hi);
    lo = lo.min(t.first().copied().unwrap_or(lo));
    hi = hi.max(t.last().copied().unwrap_or(hi));
    let x = |v: f64| left + (v - lo) / (hi - lo) * pw;
    let n = data.categories.len() as f64;
    let row_h = ph / n;
    s.push_str(r##"<g class="ed-chart-axis" aria-hidden="true" font-size="12" fill="#555555">"##);
    for tv in &t {
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{yb}" stroke="#eeeeee"/><text x="{x:.1}" y="{ty}" text-anchor="middle">{}</text>"##,
            esc(&fmt_num(*tv)),
            x = x(*tv),
            yb = top + ph,
            ty = top + ph + 16.0
        );
    }
    let _ = write!(
        s,
        r##"<line class="ed-reference" x1="{rx:.1}" x2="{rx:.1}" y1="{top}" y2="{yb}" stroke="#333333" stroke-dasharray="4 3"/>"##,
        rx = x(spec.reference),
        yb = top + ph
    );
    if !spec.x_label.is_empty() {
        let _ = write!(
            s,
            r#"<text x="{cx:.1}" y="{y}" text-anchor="middle">{}</text>"#,
            esc(spec.x_label),
            cx = left + pw / 2.0,
            y = H - 8.0
        );
    }
    for (i, c) in data.categories.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{tx}" y="{y:.1}" text-anchor="end">{}</text>"#,
            esc(c),
            tx = left - 10.0,
            y = top + row_h * (i as f64 + 0.5) + 4.0
        );
    }
    s.push_str("</g>");
    let col = colour(spec, 0);
    for (i, c) in data.categories.iter().enumerate() {
        let v = &data.values[i];
        let cy = top + row_h * (i as f64 + 0.5);
        let _ = write!(
            s,
            r#"<g class="ed-forest-row" role="img" aria-label="{label}"><line x1="{x1:.1}" x2="{x2:.1}" y1="{cy:.1}" y2="{cy:.1}" stroke="{col}" stroke-width="2"/><rect x="{rx:.1}" y="{ry:.1}" width="10" height="10" fill="{col}"/></g>"#,
            label =
                esc(&spec
                    .lang
                    .forest_row_label(c, &fmt_num(v[0]), &fmt_num(v[1]), &fmt_num(v[2]))),
            x1 = x(v[1]),
            x2 = x(v[2]),
            rx = x(v[0]) - 5.0,
            ry = cy - 5.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_numbers() {
        let d = parse(
            "Week,A,B\n12,-1.1,\u{2212}0.3\n\"24, final\",-1.4,-0.2\n",
            ChartKind::Bar,
        )
        .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(d.categories, vec!["12", "24, final"]);
        assert_eq!(d.values[0], vec![-1.1, -0.3]);
    }

    #[test]
    fn bad_rows() {
        let e = parse("Week,A\n12,abc\n", ChartKind::Bar)
            .err()
            .map(|e| (e.message, e.line));
        assert_eq!(e, Some(("`abc` is not a number".into(), 1)));
        let e = parse("a,b,c,d\nx,1,2,0\n", ChartKind::Forest)
            .err()
            .map(|e| e.line);
        assert_eq!(e, Some(1));
        assert!(parse("Week,A\n", ChartKind::Line).is_err());
    }
}
