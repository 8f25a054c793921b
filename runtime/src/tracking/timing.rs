//! Slide-view timing, pure: no web APIs, the clock is passed in (ms since the epoch,
//! `Date.now()` in the browser). Unit-tested natively and under wasm-bindgen-test.
//!
//! Dwell is the visible time of a view: `exit - enter - hidden`. A view is *counted*
//! once its visible time reaches the deck's threshold, or on any interaction.

use edetail_format::NavVia;

/// One finished slide view, ready to become a `slide_view` event.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedView {
    pub slide_id: String,
    pub slide_hash: String,
    pub enter_time: i64,
    pub exit_time: i64,
    pub dwell_ms: u64,
    pub hidden_ms: u64,
    pub order: u32,
    pub via: NavVia,
    pub counted: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct OpenView {
    slide_id: String,
    slide_hash: String,
    enter: i64,
    /// Hidden time already finished (intervals that ended while this view was open).
    hidden_ms: u64,
    order: u32,
    via: NavVia,
    interacted: bool,
}

/// Tracks the open slide view and page visibility.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewTimer {
    threshold_ms: u64,
    open: Option<OpenView>,
    /// `Some(t)`: the page has been hidden since `t`.
    hidden_since: Option<i64>,
}

impl ViewTimer {
    /// `visible`: whether the page is visible at `now`.
    pub fn new(threshold_ms: u64, visible: bool, now: i64) -> Self {
        ViewTimer {
            threshold_ms,
            open: None,
            hidden_since: if visible { None } else { Some(now) },
        }
    }

    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms
    }

    pub fn is_visible(&self) -> bool {
        self.hidden_since.is_none()
    }

    /// The slide of the open view, if any: `(slide_id, slide_hash)`.
    pub fn current(&self) -> Option<(&str, &str)> {
        self.open
            .as_ref()
            .map(|v| (v.slide_id.as_str(), v.slide_hash.as_str()))
    }

    /// Open a view of `slide_id`, closing the open one (returned). `order` is the
    /// 1-based position of the new view in the session.
    pub fn open(
        &mut self,
        now: i64,
        slide_id: &str,
        slide_hash: &str,
        via: NavVia,
        order: u32,
    ) -> Option<ClosedView> {
        let closed = self.close(now);
        self.open = Some(OpenView {
            slide_id: slide_id.to_owned(),
            slide_hash: slide_hash.to_owned(),
            enter: now,
            hidden_ms: 0,
            order,
            via,
            interacted: false,
        });
        closed
    }

    /// Record a visibility change. Returns `true` when the state actually changed.
    pub fn set_visible(&mut self, now: i64, visible: bool) -> bool {
        match (self.hidden_since, visible) {
            (Some(since), true) => {
                if let Some(v) = self.open.as_mut() {
                    // Only the part of the hidden interval after the view opened counts.
                    let from = since.max(v.enter);
                    v.hidden_ms += span(from, now);
                }
                self.hidden_since = None;
                true
            }
            (None, false) => {
                self.hidden_since = Some(now);
                true
            }
            _ => false,
        }
    }

    /// An interaction on the open view: it counts whatever its dwell.
    pub fn interaction(&mut self) {
        if let Some(v) = self.open.as_mut() {
            v.interacted = true;
        }
    }

    /// Visible time of the open view so far (0 without one).
    pub fn visible_ms(&self, now: i64) -> u64 {
        self.open
            .as_ref()
            .map(|v| {
                let (_, hidden) = self.totals(v, now);
                span(v.enter, now).saturating_sub(hidden)
            })
            .unwrap_or(0)
    }

    fn totals(&self, v: &OpenView, now: i64) -> (i64, u64) {
        let exit = now.max(v.enter);
        let running = self
            .hidden_since
            .map(|since| span(since.max(v.enter), exit))
            .unwrap_or(0);
        (exit, v.hidden_ms + running)
    }

    /// Close the open view (if any) at `now`. Visibility state is kept.
    pub fn close(&mut self, now: i64) -> Option<ClosedView> {
        let v = self.open.take()?;
        let (exit, hidden) = self.totals(&v, now);
        let total = span(v.enter, exit);
        let hidden_ms = hidden.min(total);
        let dwell_ms = total - hidden_ms;
        Some(ClosedView {
            counted: v.interacted || dwell_ms >= self.threshold_ms,
            slide_id: v.slide_id,
            slide_hash: v.slide_hash,
            enter_time: v.enter,
            exit_time: exit,
            dwell_ms,
            hidden_ms,
            order: v.order,
            via: v.via,
        })
    }
}

/// `to - from` in ms, 0 when the clock went backwards.
fn span(from: i64, to: i64) -> u64 {
    u64::try_from(to.saturating_sub(from)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dwell_is_exit_minus_enter_when_always_visible() {
        let mut t = ViewTimer::new(2000, true, 0);
        assert!(t.open(1000, "a", "ha", NavVia::Start, 1).is_none());
        let v = t.open(4500, "b", "hb", NavVia::Swipe, 2).expect("closed a");
        assert_eq!(v.slide_id, "a");
        assert_eq!((v.enter_time, v.exit_time), (1000, 4500));
        assert_eq!((v.dwell_ms, v.hidden_ms), (3500, 0));
        assert!(v.counted);
        assert_eq!(v.via, NavVia::Start);
        assert_eq!(t.current(), Some(("b", "hb")));
    }

    #[test]
    fn hidden_time_is_excluded_from_dwell() {
        let mut t = ViewTimer::new(2000, true, 0);
        t.open(0, "a", "h", NavVia::Start, 1);
        assert!(t.set_visible(1000, false));
        assert!(!t.set_visible(1500, false), "already hidden");
        assert!(t.set_visible(6000, true));
        t.set_visible(7000, false);
        // Closed while still hidden: the running hidden interval counts too.
        let v = t.close(9000).expect("view");
        assert_eq!(v.hidden_ms, 5000 + 2000);
        assert_eq!(v.dwell_ms, 9000 - 7000);
        assert!(v.counted);
    }

    #[test]
    fn hidden_before_the_view_opened_does_not_count() {
        let mut t = ViewTimer::new(2000, false, 0);
        t.open(5000, "a", "h", NavVia::Start, 1);
        t.set_visible(6000, true);
        let v = t.close(6500).expect("view");
        assert_eq!((v.hidden_ms, v.dwell_ms), (1000, 500));
        assert!(!v.counted);
    }

    #[test]
    fn threshold_counts_at_exactly_the_threshold_and_not_below() {
        let mut t = ViewTimer::new(2000, true, 0);
        t.open(0, "a", "h", NavVia::Start, 1);
        assert!(!t.open(1999, "b", "h", NavVia::Swipe, 2).unwrap().counted);
        assert!(t.open(3999, "c", "h", NavVia::Swipe, 3).unwrap().counted);
    }

    #[test]
    fn hidden_time_does_not_reach_the_threshold() {
        let mut t = ViewTimer::new(2000, true, 0);
        t.open(0, "a", "h", NavVia::Start, 1);
        t.set_visible(500, false);
        t.set_visible(10_000, true);
        let v = t.close(10_100).unwrap();
        assert_eq!(v.dwell_ms, 600);
        assert!(!v.counted);
    }

    #[test]
    fn interaction_counts_a_short_view() {
        let mut t = ViewTimer::new(2000, true, 0);
        t.open(0, "a", "h", NavVia::Start, 1);
        t.interaction();
        let v = t.close(300).unwrap();
        assert!(v.counted);
        assert_eq!(v.dwell_ms, 300);
    }

    #[test]
    fn interaction_without_a_view_is_harmless_and_not_carried_over() {
        let mut t = ViewTimer::new(2000, true, 0);
        t.interaction();
        t.open(0, "a", "h", NavVia::Start, 1);
        assert!(!t.close(10).unwrap().counted);
        assert!(t.close(20).is_none());
    }

    #[test]
    fn clock_going_backwards_never_gives_exit_before_enter() {
        let mut t = ViewTimer::new(2000, true, 0);
        t.open(10_000, "a", "h", NavVia::Start, 1);
        t.set_visible(9_000, false);
        let v = t.close(8_000).unwrap();
        assert_eq!(v.exit_time, 10_000);
        assert_eq!((v.dwell_ms, v.hidden_ms), (0, 0));
    }

    #[test]
    fn visible_ms_excludes_running_hidden_time() {
        let mut t = ViewTimer::new(2000, true, 0);
        assert_eq!(t.visible_ms(5), 0);
        t.open(0, "a", "h", NavVia::Start, 1);
        t.set_visible(1000, false);
        assert_eq!(t.visible_ms(4000), 1000);
        t.set_visible(4000, true);
        assert_eq!(t.visible_ms(4500), 1500);
    }
}
