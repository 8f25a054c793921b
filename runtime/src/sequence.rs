//! MR custom sequences: pick and reorder slides before a call; mandatory slides cannot
//! be removed; saved by name per deck (localStorage key [`storage_key`]); reconciled
//! against newer deck versions (slides that no longer exist are dropped with a notice,
//! mandatory slides that are missing are put back).

use serde::{Deserialize, Serialize};

use edetail_format::Bundle;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Sequence {
    pub name: String,
    /// Deck version the sequence was last saved against.
    pub deck_version: String,
    pub slides: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditError {
    /// Mandatory slides stay in every call.
    Mandatory(String),
    OutOfRange,
    UnknownSlide(String),
    AlreadyPresent(String),
}

/// Result of fitting a saved sequence to the deck version at hand.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reconciled {
    pub slides: Vec<String>,
    /// Slides the saved sequence named that this version does not have.
    pub dropped: Vec<String>,
    /// Mandatory slides the sequence lacked, inserted at their flow position.
    pub added: Vec<String>,
}

/// localStorage key holding the saved sequences (JSON array) of a deck.
pub fn storage_key(deck_id: &str) -> String {
    format!("edetail.sequences.{deck_id}")
}

/// The deck's own order: the main flow.
pub fn flow_order(b: &Bundle) -> Vec<String> {
    b.flow_ids().map(str::to_string).collect()
}

fn is_mandatory(b: &Bundle, id: &str) -> bool {
    b.slide(id).is_some_and(|s| s.mandatory)
}

/// Mandatory slide ids in flow order (then any mandatory detail slides).
pub fn mandatory(b: &Bundle) -> Vec<String> {
    let mut out: Vec<String> = b
        .flow_ids()
        .filter(|id| is_mandatory(b, id))
        .map(str::to_string)
        .collect();
    for s in &b.slides {
        if s.mandatory && !out.contains(&s.id) {
            out.push(s.id.clone());
        }
    }
    out
}

pub fn remove(b: &Bundle, seq: &mut Vec<String>, idx: usize) -> Result<(), EditError> {
    let id = seq.get(idx).ok_or(EditError::OutOfRange)?;
    if is_mandatory(b, id) {
        return Err(EditError::Mandatory(id.clone()));
    }
    seq.remove(idx);
    Ok(())
}

/// Move the slide at `idx` by `delta` places (clamped to the ends).
pub fn shift(seq: &mut [String], idx: usize, delta: isize) -> Result<usize, EditError> {
    if idx >= seq.len() {
        return Err(EditError::OutOfRange);
    }
    let to = (idx as isize + delta).clamp(0, seq.len() as isize - 1) as usize;
    if to < idx {
        seq[to..=idx].rotate_right(1);
    } else {
        seq[idx..=to].rotate_left(1);
    }
    Ok(to)
}

/// Append a slide of the deck that is not in the sequence yet.
pub fn add(b: &Bundle, seq: &mut Vec<String>, id: &str) -> Result<(), EditError> {
    if b.slide(id).is_none() {
        return Err(EditError::UnknownSlide(id.into()));
    }
    if seq.iter().any(|s| s == id) {
        return Err(EditError::AlreadyPresent(id.into()));
    }
    seq.push(id.to_string());
    Ok(())
}

/// Fit a saved list of slide ids to this bundle.
pub fn reconcile(b: &Bundle, saved: &[String]) -> Reconciled {
    let mut r = Reconciled::default();
    for id in saved {
        if b.slide(id).is_some() {
            if !r.slides.contains(id) {
                r.slides.push(id.clone());
            }
        } else {
            r.dropped.push(id.clone());
        }
    }
    let flow = flow_order(b);
    for m in mandatory(b) {
        if r.slides.contains(&m) {
            continue;
        }
        // Insert after the last present slide that precedes it in the flow.
        let fpos = flow.iter().position(|f| *f == m);
        let at = match fpos {
            Some(fp) => r
                .slides
                .iter()
                .rposition(|s| flow.iter().position(|f| f == s).is_some_and(|p| p < fp))
                .map(|i| i + 1)
                .unwrap_or(0),
            None => r.slides.len(),
        };
        r.slides.insert(at, m.clone());
        r.added.push(m);
    }
    if r.slides.is_empty() {
        r.slides = flow;
    }
    r
}

/// Parse the stored JSON; anything unreadable counts as no saved sequences.
pub fn load(json: &str) -> Vec<Sequence> {
    crate::json::from_str(json).unwrap_or_default()
}

/// Insert or replace a sequence by name; returns the JSON to store.
pub fn save(mut all: Vec<Sequence>, seq: Sequence) -> (Vec<Sequence>, String) {
    match all.iter_mut().find(|s| s.name == seq.name) {
        Some(s) => *s = seq,
        None => all.push(seq),
    }
    let json = serde_json::to_string(&all).unwrap_or_else(|_| "[]".into());
    (all, json)
}

edetail_format::map_only!(Sequence);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::bundle;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mandatory_slides_cannot_be_removed() {
        let b = bundle(&["a", "b", "c"], &["b"], &["d"]);
        let mut s = flow_order(&b);
        assert_eq!(remove(&b, &mut s, 1), Err(EditError::Mandatory("b".into())));
        assert_eq!(remove(&b, &mut s, 0), Ok(()));
        assert_eq!(s, ids(&["b", "c"]));
        assert_eq!(remove(&b, &mut s, 9), Err(EditError::OutOfRange));
    }

    #[test]
    fn reorder_and_add() {
        let b = bundle(&["a", "b", "c"], &[], &["d"]);
        let mut s = flow_order(&b);
        assert_eq!(shift(&mut s, 2, -2), Ok(0));
        assert_eq!(s, ids(&["c", "a", "b"]));
        assert_eq!(shift(&mut s, 0, 5), Ok(2));
        assert_eq!(s, ids(&["a", "b", "c"]));
        assert_eq!(shift(&mut s, 3, 1), Err(EditError::OutOfRange));
        assert_eq!(add(&b, &mut s, "d"), Ok(()));
        assert_eq!(
            add(&b, &mut s, "d"),
            Err(EditError::AlreadyPresent("d".into()))
        );
        assert_eq!(
            add(&b, &mut s, "zz"),
            Err(EditError::UnknownSlide("zz".into()))
        );
        assert_eq!(s, ids(&["a", "b", "c", "d"]));
    }

    #[test]
    fn reconcile_drops_missing_and_restores_mandatory() {
        // The new version removed `old` and made `c` mandatory.
        let b = bundle(&["a", "b", "c", "e"], &["c"], &[]);
        let r = reconcile(&b, &ids(&["e", "old", "a", "b", "a"]));
        assert_eq!(r.dropped, ids(&["old"]));
        assert_eq!(r.added, ids(&["c"]));
        // `c` goes right after `b`, the last kept slide that precedes it in the flow.
        assert_eq!(r.slides, ids(&["e", "a", "b", "c"]));
    }

    #[test]
    fn reconcile_of_nothing_falls_back_to_flow() {
        let b = bundle(&["a", "b"], &[], &[]);
        let r = reconcile(&b, &ids(&["gone"]));
        assert_eq!(r.slides, ids(&["a", "b"]));
        assert_eq!(r.dropped, ids(&["gone"]));
    }

    #[test]
    fn storage_roundtrip_and_garbage() {
        assert!(load("not json").is_empty());
        assert!(load("{\"x\":1}").is_empty());
        let s1 = Sequence {
            name: "short".into(),
            deck_version: "1.0.0".into(),
            slides: ids(&["a"]),
        };
        let (all, json) = save(vec![], s1.clone());
        assert_eq!(load(&json), all);
        let s2 = Sequence {
            slides: ids(&["a", "b"]),
            ..s1
        };
        let (all, _) = save(all, s2.clone());
        assert_eq!(all, vec![s2]);
        assert_eq!(storage_key("zen"), "edetail.sequences.zen");
    }
}
