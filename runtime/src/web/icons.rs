//! A handful of inline SVG icons (stroke icons on a 24-unit grid).

use yew::{Html, html};

pub fn icon(name: &str) -> Html {
    let d = match name {
        "prev" => "M15 5l-7 7 7 7",
        "next" => "M9 5l7 7-7 7",
        "grid" => "M4 4h6v6H4zM14 4h6v6h-6zM4 14h6v6H4zM14 14h6v6h-6z",
        "back" => "M10 6l-6 6 6 6M4 12h16",
        "close" => "M6 6l12 12M18 6L6 18",
        "isi" => "M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6zM12 8v5M12 16v.5",
        "refs" => "M6 4h9l3 3v13H6zM9 10h6M9 14h6M9 18h4",
        "chat" => "M4 5h16v11H9l-5 4z",
        "calendar" => "M4 6h16v14H4zM4 10h16M8 3v5M16 3v5",
        "tray" => "M15 5l-7 7 7 7",
        "stop" => "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM6 6l12 12",
        "check" => "M5 12l5 5 9-10",
        "up" => "M6 15l6-6 6 6",
        "down" => "M6 9l6 6 6-6",
        "list" => "M8 6h12M8 12h12M8 18h12M4 6h.5M4 12h.5M4 18h.5",
        "play" => "M7 4l13 8-13 8z",
        _ => "M12 12h.5",
    };
    html! {
        <svg class="icon" viewBox="0 0 24 24" width="24" height="24" aria-hidden="true" focusable="false"
             fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
            <path d={d} />
        </svg>
    }
}
