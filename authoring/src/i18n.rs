//! The human text the compiler generates itself (chart descriptions and accessible
//! labels, data-table captions, default video title, caption track label, default ISI
//! title), in the deck's locale: Korean for `ko*` locales, English otherwise.
//!
//! A deliberately small table, matching the runtime's UI languages
//! (`runtime/src/i18n.rs`). Author-written text is never translated.

/// Language of compiler-generated text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ko,
}

impl Lang {
    /// Pick the language from a BCP 47 tag (`ko-KR`, `ko`, `en-US`, ...): Korean for
    /// primary subtag `ko`, English for anything else.
    pub fn from_locale(locale: &str) -> Lang {
        let primary = locale.split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("ko") {
            Lang::Ko
        } else {
            Lang::En
        }
    }

    /// Default `[isi] title` when the manifest gives none.
    pub fn isi_title(self) -> &'static str {
        match self {
            Lang::En => "Important safety information",
            Lang::Ko => "중요 안전성 정보",
        }
    }

    /// Default video title (the `title` attribute of `::video`).
    pub fn video_title(self) -> &'static str {
        match self {
            Lang::En => "Video",
            Lang::Ko => "동영상",
        }
    }

    /// Label of the captions `<track>`.
    pub fn captions(self) -> &'static str {
        match self {
            Lang::En => "Captions",
            Lang::Ko => "자막",
        }
    }

    /// Caption of a chart's data table.
    pub fn data_table_caption(self, title: &str) -> String {
        match self {
            Lang::En => format!("{title} (data table)"),
            Lang::Ko => format!("{title} (데이터 표)"),
        }
    }

    /// SVG `<desc>` opening of a bar or line chart: "Bar chart of A, B by Week."
    pub fn series_chart_intro(self, bar: bool, series: &str, category: &str) -> String {
        match (self, bar) {
            (Lang::En, true) => format!("Bar chart of {series} by {category}."),
            (Lang::En, false) => format!("Line chart of {series} by {category}."),
            (Lang::Ko, true) => format!("{category}별 {series} 막대 그래프."),
            (Lang::Ko, false) => format!("{category}별 {series} 선 그래프."),
        }
    }

    /// SVG `<desc>` of a forest plot; `rows` is the joined [`Lang::forest_row`] list.
    pub fn forest_desc(self, n: usize, reference: &str, rows: &str) -> String {
        match self {
            Lang::En => format!(
                "Forest plot of {n} rows; reference line at {reference}. Estimates with 95% intervals: {rows}."
            ),
            Lang::Ko => format!(
                "포레스트 플롯, {n}개 행, 기준선 {reference}. 추정치와 95% 신뢰구간: {rows}."
            ),
        }
    }

    /// One forest row inside the description: "Age < 65 -1.3 (-1.6 to -1)".
    pub fn forest_row(self, label: &str, est: &str, low: &str, high: &str) -> String {
        match self {
            Lang::En => format!("{label} {est} ({low} to {high})"),
            Lang::Ko => format!("{label} {est} ({low}~{high})"),
        }
    }

    /// `aria-label` of one forest row: "Age < 65: -1.3 (95% CI -1.6 to -1)".
    pub fn forest_row_label(self, label: &str, est: &str, low: &str, high: &str) -> String {
        match self {
            Lang::En => format!("{label}: {est} (95% CI {low} to {high})"),
            Lang::Ko => format!("{label}: {est} (95% 신뢰구간 {low}~{high})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lang;

    #[test]
    fn locale_picks_language() {
        assert_eq!(Lang::from_locale("ko-KR"), Lang::Ko);
        assert_eq!(Lang::from_locale("KO"), Lang::Ko);
        assert_eq!(Lang::from_locale("ko_KR"), Lang::Ko);
        assert_eq!(Lang::from_locale("en-US"), Lang::En);
        assert_eq!(Lang::from_locale("kok-IN"), Lang::En);
        assert_eq!(Lang::from_locale("ja-JP"), Lang::En);
        assert_eq!(Lang::from_locale(""), Lang::En);
    }
}
