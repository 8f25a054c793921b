//! The navigation state machine: flow order (the deck's flow or an MR's custom
//! sequence), build steps, and a drill-down history stack distinct from flow order.
//!
//! Rules (documented in docs/runtime.md):
//! - `next` reveals the current slide's next build step before moving on; `prev` hides
//!   the last revealed step before moving back, and entering a slide backwards shows it
//!   fully built.
//! - Following a link pushes the current slide on the history stack; `back` pops it.
//!   Linear moves (next, prev, overview jumps, first, last) clear the stack.
//! - On a detail slide (not in the order), `next` continues the flow after the slide
//!   the presenter drilled down from, and `prev` is `back`.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    slide: String,
    step: u32,
    pos: usize,
}

/// What a navigation command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do (at an end, or unknown target).
    Stay,
    /// A build step was revealed (`n` steps now shown) or hidden.
    Step(u32),
    /// The current slide changed.
    Moved { from: String, to: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Nav {
    order: Vec<String>,
    steps: BTreeMap<String, u32>,
    pos: usize,
    current: String,
    step: u32,
    history: Vec<Entry>,
}

impl Nav {
    /// `order`: the slides presented linearly; `steps`: build-step count per slide id
    /// (slides absent from the map have none). `None` when the order is empty.
    pub fn new(order: Vec<String>, steps: BTreeMap<String, u32>) -> Option<Nav> {
        let current = order.first()?.clone();
        Some(Nav {
            order,
            steps,
            pos: 0,
            current,
            step: 0,
            history: Vec::new(),
        })
    }

    pub fn current(&self) -> &str {
        &self.current
    }

    /// Build steps revealed on the current slide.
    pub fn step(&self) -> u32 {
        self.step
    }

    pub fn steps_of(&self, id: &str) -> u32 {
        self.steps.get(id).copied().unwrap_or(0)
    }

    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// 1-based position of the current slide in the order; `None` on a detail slide.
    pub fn position(&self) -> Option<usize> {
        self.on_flow().then_some(self.pos + 1)
    }

    /// Index in the order of the current slide, or of the one drilled down from.
    pub fn anchor(&self) -> usize {
        self.pos
    }

    pub fn total(&self) -> usize {
        self.order.len()
    }

    pub fn can_back(&self) -> bool {
        !self.history.is_empty()
    }

    fn on_flow(&self) -> bool {
        self.order.get(self.pos).is_some_and(|s| *s == self.current)
    }

    pub fn is_detail(&self) -> bool {
        !self.on_flow()
    }

    /// Whether `next` would do anything.
    pub fn has_next(&self) -> bool {
        self.step < self.steps_of(&self.current) || self.pos + 1 < self.order.len()
    }

    /// Whether `prev` would do anything.
    pub fn has_prev(&self) -> bool {
        self.step > 0 || self.is_detail() || self.pos > 0
    }

    /// The slides `next` and `prev` would move to (ignoring build steps): the ones to
    /// keep mounted next to the current slide.
    pub fn neighbours(&self) -> (Option<&str>, Option<&str>) {
        let prev = if self.is_detail() {
            self.history
                .last()
                .map(|e| e.slide.as_str())
                .or_else(|| self.order.get(self.pos).map(String::as_str))
        } else {
            self.pos
                .checked_sub(1)
                .and_then(|i| self.order.get(i))
                .map(String::as_str)
        };
        let next = self.order.get(self.pos + 1).map(String::as_str);
        (prev, next)
    }

    fn move_to(&mut self, pos: usize, id: String, step: u32) -> Outcome {
        let from = std::mem::replace(&mut self.current, id);
        self.pos = pos;
        self.step = step;
        if from == self.current {
            Outcome::Stay
        } else {
            Outcome::Moved {
                from,
                to: self.current.clone(),
            }
        }
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Outcome {
        if self.step < self.steps_of(&self.current) {
            self.step += 1;
            return Outcome::Step(self.step);
        }
        match self.order.get(self.pos + 1).cloned() {
            Some(id) => {
                self.history.clear();
                self.move_to(self.pos + 1, id, 0)
            }
            None => Outcome::Stay,
        }
    }

    pub fn prev(&mut self) -> Outcome {
        if self.step > 0 {
            self.step -= 1;
            return Outcome::Step(self.step);
        }
        if self.is_detail() {
            if self.can_back() {
                return self.back();
            }
            let id = self.order[self.pos].clone();
            let steps = self.steps_of(&id);
            return self.move_to(self.pos, id, steps);
        }
        match self.pos.checked_sub(1) {
            Some(p) => {
                self.history.clear();
                let id = self.order[p].clone();
                let steps = self.steps_of(&id);
                self.move_to(p, id, steps)
            }
            None => Outcome::Stay,
        }
    }

    /// Jump (overview, first, last): clears the history. Ids outside the order are
    /// shown as detail slides.
    pub fn jump(&mut self, id: &str) -> Outcome {
        self.history.clear();
        let pos = self.order.iter().position(|s| s == id).unwrap_or(self.pos);
        self.move_to(pos, id.to_string(), 0)
    }

    pub fn first(&mut self) -> Outcome {
        let id = self.order[0].clone();
        self.jump(&id)
    }

    pub fn last(&mut self) -> Outcome {
        let id = self.order[self.order.len() - 1].clone();
        self.jump(&id)
    }

    /// Follow a link: push the current slide on the history stack.
    pub fn follow(&mut self, id: &str) -> Outcome {
        if id == self.current {
            return Outcome::Stay;
        }
        self.history.push(Entry {
            slide: self.current.clone(),
            step: self.step,
            pos: self.pos,
        });
        let pos = self.order.iter().position(|s| s == id).unwrap_or(self.pos);
        self.move_to(pos, id.to_string(), 0)
    }

    /// Return to where the last link was followed from.
    pub fn back(&mut self) -> Outcome {
        match self.history.pop() {
            Some(e) => self.move_to(e.pos, e.slide, e.step),
            None => Outcome::Stay,
        }
    }

    /// Replace the order (a new sequence); stays on the current slide when it is in
    /// the new order, otherwise starts at the first slide.
    pub fn set_order(&mut self, order: Vec<String>) -> Outcome {
        if order.is_empty() {
            return Outcome::Stay;
        }
        self.order = order;
        self.history.clear();
        match self.order.iter().position(|s| *s == self.current) {
            Some(p) => {
                self.pos = p;
                Outcome::Stay
            }
            None => {
                let id = self.order[0].clone();
                self.move_to(0, id, 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nav(ids: &[&str], steps: &[(&str, u32)]) -> Nav {
        Nav::new(
            ids.iter().map(|s| s.to_string()).collect(),
            steps.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        )
        .expect("non-empty")
    }

    fn moved(from: &str, to: &str) -> Outcome {
        Outcome::Moved {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn empty_order_has_no_nav() {
        assert!(Nav::new(vec![], BTreeMap::new()).is_none());
    }

    #[test]
    fn linear_next_prev_stop_at_ends() {
        let mut n = nav(&["a", "b", "c"], &[]);
        assert_eq!(n.prev(), Outcome::Stay);
        assert!(!n.has_prev());
        assert_eq!(n.next(), moved("a", "b"));
        assert_eq!(n.position(), Some(2));
        assert_eq!(n.next(), moved("b", "c"));
        assert!(!n.has_next());
        assert_eq!(n.next(), Outcome::Stay);
        assert_eq!(n.prev(), moved("c", "b"));
        assert_eq!(n.neighbours(), (Some("a"), Some("c")));
    }

    #[test]
    fn build_steps_reveal_before_moving() {
        let mut n = nav(&["a", "b"], &[("a", 2), ("b", 3)]);
        assert_eq!(n.next(), Outcome::Step(1));
        assert_eq!(n.next(), Outcome::Step(2));
        assert_eq!(n.next(), moved("a", "b"));
        assert_eq!(n.step(), 0);
        assert_eq!(n.next(), Outcome::Step(1));
        assert_eq!(n.prev(), Outcome::Step(0));
        // Going back enters the previous slide fully built.
        assert_eq!(n.prev(), moved("b", "a"));
        assert_eq!(n.step(), 2);
        assert_eq!(n.prev(), Outcome::Step(1));
    }

    #[test]
    fn drilldown_and_back_restore_place_and_step() {
        let mut n = nav(&["a", "b", "c"], &[("b", 2)]);
        n.next();
        n.next(); // b, step 1
        assert_eq!(n.step(), 1);
        assert_eq!(n.follow("detail"), moved("b", "detail"));
        assert!(n.is_detail());
        assert_eq!(n.position(), None);
        assert!(n.can_back());
        assert_eq!(n.neighbours(), (Some("b"), Some("c")));
        // A nested drill-down stacks.
        assert_eq!(n.follow("detail2"), moved("detail", "detail2"));
        assert_eq!(n.back(), moved("detail2", "detail"));
        assert_eq!(n.back(), moved("detail", "b"));
        assert_eq!(n.step(), 1);
        assert_eq!(n.position(), Some(2));
        assert!(!n.can_back());
        assert_eq!(n.back(), Outcome::Stay);
    }

    #[test]
    fn next_from_detail_continues_flow_and_prev_goes_back() {
        let mut n = nav(&["a", "b", "c"], &[]);
        n.follow("d");
        assert_eq!(n.next(), moved("d", "b"));
        assert!(!n.can_back());
        n.follow("d");
        assert_eq!(n.prev(), moved("d", "b"));
    }

    #[test]
    fn links_to_flow_slides_move_the_anchor() {
        let mut n = nav(&["a", "b", "c", "d"], &[]);
        assert_eq!(n.follow("c"), moved("a", "c"));
        assert_eq!(n.position(), Some(3));
        assert!(n.can_back());
        assert_eq!(n.next(), moved("c", "d"));
        // Linear moves clear the stack.
        assert!(!n.can_back());
        assert_eq!(n.follow("d"), Outcome::Stay);
    }

    #[test]
    fn jumps_clear_history() {
        let mut n = nav(&["a", "b", "c"], &[]);
        n.follow("x");
        assert_eq!(n.jump("c"), moved("x", "c"));
        assert!(!n.can_back());
        assert_eq!(n.first(), moved("c", "a"));
        assert_eq!(n.last(), moved("a", "c"));
        assert_eq!(n.jump("c"), Outcome::Stay);
        // A jump to a slide outside the order shows it as a detail slide.
        assert_eq!(n.jump("x"), moved("c", "x"));
        assert!(n.is_detail());
        assert_eq!(n.prev(), moved("x", "c"));
    }

    #[test]
    fn new_order_keeps_or_resets_position() {
        let mut n = nav(&["a", "b", "c"], &[]);
        n.next();
        assert_eq!(n.set_order(vec!["c".into(), "b".into()]), Outcome::Stay);
        assert_eq!(n.position(), Some(2));
        assert_eq!(n.set_order(vec!["c".into()]), moved("b", "c"));
        assert_eq!(n.set_order(vec![]), Outcome::Stay);
        assert_eq!(n.total(), 1);
    }
}
