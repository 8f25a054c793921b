//! UI strings, localized by the bundle's locale (Korean and English).
//!
//! A deliberately small table: one `match` per language, no runtime parsing. Strings
//! with parameters are produced by the helper functions below.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ko,
}

impl Lang {
    /// Pick a UI language from a BCP 47 tag (`ko-KR`, `ko`, `en-US`, ...).
    /// Anything that is not Korean gets English.
    pub fn from_locale(locale: &str) -> Lang {
        let primary = locale
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if primary == "ko" { Lang::Ko } else { Lang::En }
    }

    /// The `lang` attribute value for the document.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }
}

/// Every fixed UI string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K {
    Next,
    Prev,
    Back,
    Overview,
    CloseOverview,
    Isi,
    /// The ISI button's label where the control bar is narrow (portrait iPad).
    IsiShort,
    /// Shown in place of a video whose bytes failed the integrity check.
    VideoRefused,
    References,
    Close,
    Loading,
    Preview,
    RefusedTitle,
    Expired,
    NotYetValid,
    HashMismatch,
    /// Signature refusals: no `bundle.sig`, an untrusted signer, a forged signature.
    Unsigned,
    UntrustedSigner,
    BadSignature,
    UnsupportedSchema,
    LoadFailed,
    NoBundle,
    ApprovalCode,
    StartCall,
    StartCallTitle,
    PhysicianId,
    PhysicianIdHint,
    Anonymous,
    InPerson,
    Remote,
    Sequence,
    FullDeck,
    EditSequence,
    SaveSequence,
    SequenceName,
    Remove,
    MoveUp,
    MoveDown,
    AddSlide,
    Mandatory,
    SlidesDropped,
    Tray,
    SpeakerNotes,
    KeyMessage,
    Reaction,
    Negative,
    Neutral,
    Positive,
    CaptureQuestion,
    QuestionPlaceholder,
    Save,
    Saved,
    MandatoryChecklist,
    EndCall,
    CallSummary,
    CloseCall,
    ResumeCall,
    Dwell,
    Questions,
    Reactions,
    NoneYet,
    Unsynced,
    LastSync,
    Never,
    SyncError,
    ConsentTitle,
    ConsentBody,
    Accept,
    Decline,
    AskQuestion,
    RequestVisit,
    Send,
    Sent,
    PreferredTime,
    Note,
    Submit,
    Correct,
    Incorrect,
    ThanksAnswer,
    ShowTable,
    ShowChart,
    Zoom,
    PlayVideo,
    Inspector,
    Events,
    Diagnostics,
    NoNotes,
    SlidesShown,
    Progress,
    Menu,
    StepHint,
    Retry,
    MandatoryMissed,
}

/// The fixed string for `k` in `lang`.
pub fn t(lang: Lang, k: K) -> &'static str {
    match lang {
        Lang::En => en(k),
        Lang::Ko => ko(k),
    }
}

fn en(k: K) -> &'static str {
    use K::*;
    match k {
        Next => "Next slide",
        Prev => "Previous slide",
        Back => "Back",
        Overview => "All slides",
        CloseOverview => "Close overview",
        Isi => "Safety information",
        IsiShort => "Safety",
        VideoRefused => "This video did not pass the integrity check and cannot be played.",
        References => "References",
        Close => "Close",
        Loading => "Loading presentation…",
        Preview => "PREVIEW — not for use with physicians",
        RefusedTitle => "This presentation cannot be shown",
        Expired => "Its approval has expired.",
        NotYetValid => "Its approval period has not begun yet.",
        HashMismatch => {
            "Its content failed the integrity check: it may have been altered or damaged."
        }
        Unsigned => "It is not signed by the head office, so its origin cannot be confirmed.",
        UntrustedSigner => "It is signed with a key this app does not trust.",
        BadSignature => "Its signature is invalid: the content may have been forged or altered.",
        UnsupportedSchema => "It was made for a different version of the player. Update the app.",
        LoadFailed => "It could not be loaded. Check the connection and try again.",
        NoBundle => "No presentation was named in the link.",
        ApprovalCode => "Approval code",
        StartCall => "Start call",
        StartCallTitle => "New call",
        PhysicianId => "Physician (pseudonymous id)",
        PhysicianIdHint => "e.g. h-4f2a — never a name",
        Anonymous => "Anonymous",
        InPerson => "In person",
        Remote => "Remote",
        Sequence => "Slide sequence",
        FullDeck => "Full deck",
        EditSequence => "Edit sequence",
        SaveSequence => "Save sequence",
        SequenceName => "Sequence name",
        Remove => "Remove",
        MoveUp => "Move up",
        MoveDown => "Move down",
        AddSlide => "Add",
        Mandatory => "Mandatory",
        SlidesDropped => "Slides no longer in this deck version were removed from the sequence",
        Tray => "Presenter tools",
        SpeakerNotes => "Speaker notes",
        KeyMessage => "Key message",
        Reaction => "Physician reaction",
        Negative => "Negative",
        Neutral => "Neutral",
        Positive => "Positive",
        CaptureQuestion => "Physician's question",
        QuestionPlaceholder => "Type the question…",
        Save => "Save",
        Saved => "Saved",
        MandatoryChecklist => "Mandatory slides",
        EndCall => "End call",
        CallSummary => "Call summary",
        CloseCall => "Close call",
        ResumeCall => "Resume",
        Dwell => "Time",
        Questions => "Questions",
        Reactions => "Reactions",
        NoneYet => "None",
        Unsynced => "unsynced",
        LastSync => "Last sync",
        Never => "never",
        SyncError => "Sync problem",
        ConsentTitle => "May we record how you use this content?",
        ConsentBody => {
            "We record which slides you view and what you interact with to improve our materials. Declining changes nothing about what you can see."
        }
        Accept => "Accept",
        Decline => "Decline",
        AskQuestion => "Ask a question",
        RequestVisit => "Request a visit",
        Send => "Send",
        Sent => "Thank you — sent.",
        PreferredTime => "Preferred time",
        Note => "Note",
        Submit => "Submit",
        Correct => "Correct",
        Incorrect => "Not quite",
        ThanksAnswer => "Thank you for your answer.",
        ShowTable => "Show data table",
        ShowChart => "Show chart",
        Zoom => "Zoom image",
        PlayVideo => "Play video",
        Inspector => "Tracking inspector",
        Events => "events",
        Diagnostics => "Build problems",
        NoNotes => "No speaker notes for this slide.",
        SlidesShown => "Slides shown",
        Progress => "Progress",
        Menu => "Menu",
        StepHint => "More on this slide",
        Retry => "Try again",
        MandatoryMissed => "Mandatory slides not shown",
    }
}

fn ko(k: K) -> &'static str {
    use K::*;
    match k {
        Next => "다음 슬라이드",
        Prev => "이전 슬라이드",
        Back => "돌아가기",
        Overview => "전체 슬라이드",
        CloseOverview => "전체 보기 닫기",
        Isi => "안전성 정보",
        IsiShort => "안전성 정보",
        VideoRefused => "이 동영상은 무결성 검사를 통과하지 못해 재생할 수 없습니다.",
        References => "참고문헌",
        Close => "닫기",
        Loading => "프레젠테이션을 불러오는 중…",
        Preview => "미리보기 — 의료인 대상 사용 금지",
        RefusedTitle => "이 프레젠테이션을 표시할 수 없습니다",
        Expired => "승인 기간이 만료되었습니다.",
        NotYetValid => "승인 기간이 아직 시작되지 않았습니다.",
        HashMismatch => "무결성 검사에 실패했습니다. 내용이 변경되었거나 손상되었을 수 있습니다.",
        Unsigned => "본사 서명이 없어 출처를 확인할 수 없습니다.",
        UntrustedSigner => "이 앱이 신뢰하지 않는 키로 서명되었습니다.",
        BadSignature => "서명이 유효하지 않습니다. 내용이 위조되었거나 변경되었을 수 있습니다.",
        UnsupportedSchema => "다른 버전의 플레이어용으로 만들어졌습니다. 앱을 업데이트하세요.",
        LoadFailed => "불러올 수 없습니다. 연결을 확인한 후 다시 시도하세요.",
        NoBundle => "링크에 프레젠테이션이 지정되지 않았습니다.",
        ApprovalCode => "승인 번호",
        StartCall => "콜 시작",
        StartCallTitle => "새 콜",
        PhysicianId => "의사 (가명 ID)",
        PhysicianIdHint => "예: h-4f2a — 실명 입력 금지",
        Anonymous => "익명",
        InPerson => "대면",
        Remote => "원격",
        Sequence => "슬라이드 순서",
        FullDeck => "전체 덱",
        EditSequence => "순서 편집",
        SaveSequence => "순서 저장",
        SequenceName => "순서 이름",
        Remove => "삭제",
        MoveUp => "위로",
        MoveDown => "아래로",
        AddSlide => "추가",
        Mandatory => "필수",
        SlidesDropped => "이 덱 버전에 없는 슬라이드가 순서에서 제거되었습니다",
        Tray => "발표자 도구",
        SpeakerNotes => "발표자 노트",
        KeyMessage => "핵심 메시지",
        Reaction => "의사 반응",
        Negative => "부정적",
        Neutral => "중립",
        Positive => "긍정적",
        CaptureQuestion => "의사 질문",
        QuestionPlaceholder => "질문을 입력하세요…",
        Save => "저장",
        Saved => "저장됨",
        MandatoryChecklist => "필수 슬라이드",
        EndCall => "콜 종료",
        CallSummary => "콜 요약",
        CloseCall => "콜 닫기",
        ResumeCall => "계속하기",
        Dwell => "시간",
        Questions => "질문",
        Reactions => "반응",
        NoneYet => "없음",
        Unsynced => "미전송",
        LastSync => "마지막 동기화",
        Never => "없음",
        SyncError => "동기화 문제",
        ConsentTitle => "이용 기록 수집에 동의하시겠습니까?",
        ConsentBody => {
            "자료 개선을 위해 열람한 슬라이드와 상호작용을 기록합니다. 거부하셔도 모든 내용을 보실 수 있습니다."
        }
        Accept => "동의",
        Decline => "거부",
        AskQuestion => "질문하기",
        RequestVisit => "방문 요청",
        Send => "보내기",
        Sent => "감사합니다. 전송되었습니다.",
        PreferredTime => "희망 시간",
        Note => "메모",
        Submit => "제출",
        Correct => "정답입니다",
        Incorrect => "오답입니다",
        ThanksAnswer => "응답해 주셔서 감사합니다.",
        ShowTable => "데이터 표 보기",
        ShowChart => "차트 보기",
        Zoom => "이미지 확대",
        PlayVideo => "동영상 재생",
        Inspector => "트래킹 검사기",
        Events => "이벤트",
        Diagnostics => "빌드 문제",
        NoNotes => "이 슬라이드에는 발표자 노트가 없습니다.",
        SlidesShown => "표시한 슬라이드",
        Progress => "진행",
        Menu => "메뉴",
        StepHint => "이 슬라이드에 내용이 더 있습니다",
        Retry => "다시 시도",
        MandatoryMissed => "표시하지 않은 필수 슬라이드",
    }
}

/// The live-region announcement on a slide change: "Slide 3 of 18: Title".
pub fn slide_announcement(lang: Lang, n: usize, total: usize, title: &str) -> String {
    match lang {
        Lang::En => format!("Slide {n} of {total}: {title}"),
        Lang::Ko => format!("슬라이드 {n}/{total}: {title}"),
    }
}

/// A detail (drill-down) slide has no flow position.
pub fn detail_announcement(lang: Lang, title: &str) -> String {
    match lang {
        Lang::En => format!("Detail slide: {title}"),
        Lang::Ko => format!("상세 슬라이드: {title}"),
    }
}

/// "Go to slide 4: Title" for overview cards.
pub fn goto_label(lang: Lang, n: usize, title: &str) -> String {
    match lang {
        Lang::En => format!("Go to slide {n}: {title}"),
        Lang::Ko => format!("슬라이드 {n}로 이동: {title}"),
    }
}

/// A duration in whole seconds as `m:ss`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// "Reference 3" label of a citation button.
pub fn reference_label(lang: Lang, n: u32) -> String {
    match lang {
        Lang::En => format!("Reference {n}"),
        Lang::Ko => format!("참고문헌 {n}"),
    }
}

/// Why a bundle cannot be presented, localized; the approval code and dates are added
/// by the caller where known.
pub fn approval_window(lang: Lang, from: &str, until: &str) -> String {
    match lang {
        Lang::En => format!("Approved for use from {from} to {until}."),
        Lang::Ko => format!("승인 기간: {from} ~ {until}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_picks_language() {
        assert_eq!(Lang::from_locale("ko-KR"), Lang::Ko);
        assert_eq!(Lang::from_locale("KO"), Lang::Ko);
        assert_eq!(Lang::from_locale("ko_KR"), Lang::Ko);
        assert_eq!(Lang::from_locale("en-US"), Lang::En);
        assert_eq!(Lang::from_locale("ja-JP"), Lang::En);
        assert_eq!(Lang::from_locale(""), Lang::En);
        assert_eq!(Lang::from_locale("kok"), Lang::En);
    }

    #[test]
    fn announcements_are_localized() {
        assert_eq!(
            slide_announcement(Lang::En, 3, 18, "Efficacy"),
            "Slide 3 of 18: Efficacy"
        );
        assert_eq!(
            slide_announcement(Lang::Ko, 3, 18, "효능"),
            "슬라이드 3/18: 효능"
        );
        assert_ne!(t(Lang::En, K::Next), t(Lang::Ko, K::Next));
    }

    #[test]
    fn durations_format() {
        assert_eq!(duration(0), "0:00");
        assert_eq!(duration(9_400), "0:09");
        assert_eq!(duration(125_000), "2:05");
    }
}
