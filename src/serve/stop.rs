//! Stop sequences (the API's `stop`): generation ends where the text first contains one,
//! and the text from it on is not returned. Streamed text is held back while its end could
//! still be the start of a stop sequence, so no client ever sees part of one.

/// The text generated so far that has not been released, and the sequences to stop at.
#[derive(Debug, Default)]
pub struct StopText {
    stops: Vec<String>,
    held: String,
}

impl StopText {
    /// `stops` must not contain an empty string (the request parser refuses them).
    pub fn new(stops: Vec<String>) -> StopText {
        debug_assert!(stops.iter().all(|s| !s.is_empty()));
        StopText { stops, held: String::new() }
    }

    /// Adds a decoded piece; returns the text that can be released now, and whether a stop
    /// sequence was found (then the text before it is released and the rest dropped).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        self.held.push_str(piece);
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            self.held.truncate(at);
            return (std::mem::take(&mut self.held), true);
        }
        let keep = self.stops.iter().map(|s| partial_match(&self.held, s)).max().unwrap_or(0);
        let rest = self.held.split_off(self.held.len() - keep);
        (std::mem::replace(&mut self.held, rest), false)
    }

    /// What is still held when generation ends without a stop sequence.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// The length of the longest proper prefix of `stop` that `text` ends with. A prefix ends
/// on one of `stop`'s character boundaries, so `text` ends with a whole string there and
/// `text.len() - n` is a boundary of `text` as well.
fn partial_match(text: &str, stop: &str) -> usize {
    stop.char_indices().map(|(i, _)| i).filter(|&i| i > 0 && text.ends_with(&stop[..i])).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces`, returns what was released in total and whether it stopped (and
    /// checks that nothing is released after a stop).
    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut s = StopText::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let (t, hit) = s.push(p);
            out.push_str(&t);
            if hit {
                return (out, true);
            }
        }
        out.push_str(&s.finish());
        (out, false)
    }

    #[test]
    fn text_ends_before_the_first_stop_sequence_even_across_pieces() {
        assert_eq!(run(&[","], &[" 5", ",", " 6"]), (" 5".into(), true));
        assert_eq!(run(&["\n\n"], &["a\n", "\nb"]), ("a".into(), true));
        assert_eq!(run(&["END", "STOP"], &["xxS", "TOPyyEND"]), ("xx".into(), true));
        // The earliest match wins, whichever sequence it is.
        assert_eq!(run(&["b", "a"], &["xab"]), ("x".into(), true));
    }

    #[test]
    fn a_partial_match_is_held_back_then_released_when_it_is_not_a_stop() {
        let mut s = StopText::new(vec!["<end>".into()]);
        assert_eq!(s.push("hello <e"), ("hello ".into(), false));
        assert_eq!(s.push("n"), (String::new(), false));
        assert_eq!(s.push("x"), ("<enx".into(), false));
        assert_eq!(s.push("<"), (String::new(), false));
        assert_eq!(s.finish(), "<");
        // Without stop sequences every piece goes straight through.
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
    }

    #[test]
    fn multibyte_stop_sequences_are_matched_on_character_boundaries() {
        assert_eq!(run(&["é!"], &["caf", "é", "!", "x"]), ("caf".into(), true));
        let mut s = StopText::new(vec!["→→".into()]);
        assert_eq!(s.push("a→"), ("a".into(), false));
        assert_eq!(s.push("b"), ("→b".into(), false));
    }
}
