//! Quiz scoring.

/// Whether a quiz answer is right: the selected option ids are exactly the correct
/// ones, in any order (as multisets: a repeated id must be repeated as often).
///
/// Counts rather than sorting both lists: the player's only sort would otherwise link a
/// stable sort for `String`s (~3 KB of wasm) for lists of a handful of options.
pub fn is_correct(selected: &[String], correct: &[String]) -> bool {
    let count = |list: &[String], x: &String| list.iter().filter(|y| *y == x).count();
    selected.len() == correct.len()
        && selected
            .iter()
            .all(|x| count(selected, x) == count(correct, x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn order_does_not_matter_but_every_id_does() {
        assert!(is_correct(&v(&["b", "a"]), &v(&["a", "b"])));
        assert!(is_correct(&v(&[]), &v(&[])));
        assert!(!is_correct(&v(&["a"]), &v(&["a", "b"])));
        assert!(!is_correct(&v(&["a", "b", "c"]), &v(&["a", "b"])));
        assert!(!is_correct(&v(&["a", "c"]), &v(&["a", "b"])));
        // Multisets, as comparing sorted lists did.
        assert!(!is_correct(&v(&["a", "a"]), &v(&["a", "b"])));
        assert!(is_correct(&v(&["a", "b", "a"]), &v(&["a", "a", "b"])));
    }
}
