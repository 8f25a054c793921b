//! Swipe recognition from pointer events. Only fingers swipe (`pointerType == "touch"`):
//! pen and mouse never turn the slide, nor does a gesture that starts on an interactive
//! region (charts, sliders, scrollable panes, inputs: the caller says so), nor a
//! multi-finger gesture (pinch).

/// Minimum horizontal travel, CSS px.
pub const THRESHOLD_PX: f64 = 50.0;
/// Horizontal travel must exceed vertical travel by this factor.
pub const DOMINANCE: f64 = 1.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swipe {
    /// Finger moved right to left: next slide.
    Next,
    /// Finger moved left to right: previous slide.
    Prev,
}

#[derive(Debug, Default, Clone)]
pub struct SwipeTracker {
    start: Option<(i32, f64, f64)>,
    /// Set when a second finger touched down during the gesture.
    cancelled: bool,
    active: u32,
}

impl SwipeTracker {
    pub fn down(&mut self, pointer_id: i32, pointer_type: &str, x: f64, y: f64, interactive: bool) {
        if pointer_type != "touch" {
            return;
        }
        self.active += 1;
        if self.active > 1 {
            self.cancelled = true;
            return;
        }
        self.cancelled = interactive;
        self.start = Some((pointer_id, x, y));
    }

    /// A pointer went up; returns the swipe it completed, if any.
    pub fn up(&mut self, pointer_id: i32, pointer_type: &str, x: f64, y: f64) -> Option<Swipe> {
        if pointer_type != "touch" {
            return None;
        }
        self.active = self.active.saturating_sub(1);
        let (id, x0, y0) = self.start?;
        if id != pointer_id {
            return None;
        }
        self.start = None;
        let cancelled = std::mem::take(&mut self.cancelled);
        if cancelled {
            return None;
        }
        classify(x - x0, y - y0)
    }

    /// pointercancel: forget the gesture.
    pub fn cancel(&mut self) {
        *self = SwipeTracker::default();
    }
}

/// Classify a finger's travel.
pub fn classify(dx: f64, dy: f64) -> Option<Swipe> {
    if !dx.is_finite() || !dy.is_finite() {
        return None;
    }
    if dx.abs() < THRESHOLD_PX || dx.abs() < dy.abs() * DOMINANCE {
        return None;
    }
    Some(if dx < 0.0 { Swipe::Next } else { Swipe::Prev })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finger_swipes_turn_slides() {
        let mut t = SwipeTracker::default();
        t.down(1, "touch", 500.0, 300.0, false);
        assert_eq!(t.up(1, "touch", 400.0, 320.0), Some(Swipe::Next));
        t.down(2, "touch", 400.0, 300.0, false);
        assert_eq!(t.up(2, "touch", 470.0, 300.0), Some(Swipe::Prev));
    }

    #[test]
    fn short_or_vertical_moves_do_not() {
        assert_eq!(classify(-49.0, 0.0), None);
        assert_eq!(classify(-80.0, 60.0), None);
        assert_eq!(classify(-90.0, 59.0), Some(Swipe::Next));
        assert_eq!(classify(f64::NAN, 0.0), None);
    }

    #[test]
    fn pen_mouse_and_interactive_regions_never_swipe() {
        let mut t = SwipeTracker::default();
        t.down(1, "pen", 500.0, 300.0, false);
        assert_eq!(t.up(1, "pen", 100.0, 300.0), None);
        t.down(1, "mouse", 500.0, 300.0, false);
        assert_eq!(t.up(1, "mouse", 100.0, 300.0), None);
        t.down(1, "touch", 500.0, 300.0, true);
        assert_eq!(t.up(1, "touch", 100.0, 300.0), None);
        // The next gesture is not affected.
        t.down(3, "touch", 500.0, 300.0, false);
        assert_eq!(t.up(3, "touch", 100.0, 300.0), Some(Swipe::Next));
    }

    #[test]
    fn pinch_is_not_a_swipe() {
        let mut t = SwipeTracker::default();
        t.down(1, "touch", 500.0, 300.0, false);
        t.down(2, "touch", 600.0, 300.0, false);
        assert_eq!(t.up(2, "touch", 700.0, 300.0), None);
        assert_eq!(t.up(1, "touch", 300.0, 300.0), None);
        t.down(4, "touch", 500.0, 300.0, false);
        t.cancel();
        assert_eq!(t.up(4, "touch", 100.0, 300.0), None);
    }
}
