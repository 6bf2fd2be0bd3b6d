//! Python's character classes and line rules for `str`, which the release's reward code
//! counts with. Rust's differ at the edges: its `\w` takes combining marks and connector
//! punctuation but not `²` or `½`; its `\s` leaves out the separators \x1c-\x1f; `str::lines`
//! breaks on `\n` only.

use std::sync::LazyLock;

use regex::Regex;

/// Python's `\w` in a str pattern: `str.isalnum()` (general category L* or N*) or `_`.
pub const WORD: &str = r"[\p{L}\p{N}_]";

/// Python's `\s` in a str pattern, `str.isspace()`: Unicode White_Space and \x1c-\x1f.
pub const SPACE: &str = r"[\s\x1C-\x1F]";

/// Python's `[^\s]`.
pub const NOT_SPACE: &str = r"[^\s\x1C-\x1F]";

/// `str.isspace()` for one character.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `str.strip()`.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `str.rstrip()`.
pub fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// Where `str.splitlines()` breaks a line (`\r\n` is one break, handled by `splitlines`).
fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// `str.splitlines()`: the lines without their breaks; no empty last line after a final break.
pub fn splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if !is_line_break(c) {
            continue;
        }
        lines.push(&s[start..i]);
        start = i + c.len_utf8();
        if c == '\r' {
            if let Some(&(j, '\n')) = chars.peek() {
                chars.next();
                start = j + 1;
            }
        }
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

static DECIMAL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\p{Nd}$").expect("valid regex"));

fn is_decimal(c: char) -> bool {
    let mut buf = [0u8; 4];
    DECIMAL.is_match(c.encode_utf8(&mut buf))
}

/// The value of a decimal digit of any script (general category Nd, Python's `\d`). Unicode
/// encodes each script's digits as one run 0..9, and runs that touch follow one another, so
/// the digit is its distance from the start of the contiguous Nd block, modulo 10.
pub fn decimal_value(c: char) -> Option<u32> {
    if c.is_ascii_digit() {
        return c.to_digit(10);
    }
    if !is_decimal(c) {
        return None;
    }
    let mut back = 0;
    let mut cp = c as u32;
    while let Some(prev) = cp.checked_sub(1).and_then(char::from_u32).filter(|p| is_decimal(*p)) {
        back += 1;
        cp = prev as u32;
    }
    Some(back % 10)
}

/// Python's default limit on the digits `int(str)` converts (`sys.get_int_max_str_digits()`,
/// 3.10.7 and later); a longer number raises ValueError.
pub const INT_MAX_STR_DIGITS: usize = 4300;

/// Python's `int(digits)` for a run of decimal digits of any script, as the nearest f64
/// (infinite past f64's range); None where Python raises (more than 4300 digits).
pub fn int_of_digits(digits: &str) -> Option<f64> {
    let ascii: String =
        digits.chars().map(|c| char::from_digit(decimal_value(c)?, 10)).collect::<Option<_>>()?;
    if ascii.is_empty() || ascii.len() > INT_MAX_STR_DIGITS {
        return None;
    }
    // f64's parser rounds to nearest, as Python's float(int) does
    ascii.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_and_space_classes_are_pythons() {
        let word = Regex::new(&format!("^{WORD}$")).unwrap();
        let space = Regex::new(&format!("^{SPACE}$")).unwrap();
        // numbers of every kind are word characters; marks and connectors other than _ are not
        for c in ["a", "É", "ß", "中", "٣", "²", "½", "Ⅻ", "_"] {
            assert!(word.is_match(c), "{c:?}");
        }
        for c in ["\u{301}", "\u{200d}", "‿", "-", " "] {
            assert!(!word.is_match(c), "{c:?}");
        }
        for c in ['\t', '\x0b', '\x1c', '\x1f', '\u{85}', '\u{a0}', '\u{2003}', '\u{3000}'] {
            assert!(space.is_match(&c.to_string()) && is_space(c), "{c:?}");
        }
        assert!(!is_space('\u{200b}') && !space.is_match("\u{200b}"));
        assert_eq!(strip("\x1f a b \x1c"), "a b");
        assert_eq!(rstrip(" a. \n"), " a.");
    }

    #[test]
    fn lines_break_where_splitlines_does() {
        // Python: 'a\rb\r\nc\x0bd\x1ce\x85f\u2028g\n\nh\n'.splitlines()
        assert_eq!(
            splitlines("a\rb\r\nc\x0bd\x1ce\u{85}f\u{2028}g\n\nh\n"),
            vec!["a", "b", "c", "d", "e", "f", "g", "", "h"]
        );
        assert_eq!(splitlines(""), Vec::<&str>::new());
        assert_eq!(splitlines("\n"), vec![""]);
        assert_eq!(splitlines("x\x1fy"), vec!["x\x1fy"]); // \x1f is space, not a line break
    }

    #[test]
    fn digits_of_any_script_are_read() {
        assert_eq!(decimal_value('7'), Some(7));
        assert_eq!(decimal_value('٣'), Some(3)); // ARABIC-INDIC DIGIT THREE
        assert_eq!(decimal_value('३'), Some(3)); // DEVANAGARI DIGIT THREE
        assert_eq!(decimal_value('３'), Some(3)); // FULLWIDTH DIGIT THREE
                                                  // the mathematical digits are five runs 0..9 back to back (U+1D7CE..U+1D7FF)
        assert_eq!(decimal_value('\u{1D7CE}'), Some(0));
        assert_eq!(decimal_value('\u{1D7E1}'), Some(9));
        assert_eq!(decimal_value('\u{1D7E2}'), Some(0));
        assert_eq!(decimal_value('\u{1D7FF}'), Some(9));
        assert_eq!(decimal_value('²'), None); // a number, but not a decimal digit
        assert_eq!(int_of_digits("3٠٠٠"), Some(3000.0));
        assert_eq!(int_of_digits(&"9".repeat(400)), Some(f64::INFINITY));
        assert_eq!(int_of_digits(&"1".repeat(4300)).map(f64::is_infinite), Some(true));
        assert_eq!(int_of_digits(&"0".repeat(4301)), None);
    }
}
