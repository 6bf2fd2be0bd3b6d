//! Python's `html.unescape`: named references from the HTML5 table (the legacy ones also
//! without `;`, and the longest such name at the start of an unknown one), decimal and hex
//! numeric references with the HTML5 repairs (C1 controls read as windows-1252, surrogates
//! and values past U+10FFFF as U+FFFD, noncharacters and most controls dropped).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::python::INT_MAX_STR_DIGITS;

/// `&` then a decimal reference, a hex reference, or up to 32 characters of a name.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0C <&#;]{1,32};?)").expect("valid regex")
});

static NAMED: LazyLock<HashMap<&'static str, String>> = LazyLock::new(|| {
    include_str!("html5_entities.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, points) = l.split_once('\t').expect("html5_entities.tsv: name TAB code points");
            let text = points
                .split(' ')
                .map(|h| u32::from_str_radix(h, 16).ok().and_then(char::from_u32).expect("a code point"))
                .collect();
            (name, text)
        })
        .collect()
});

/// C1 controls as windows-1252 reads them, and the two other numeric references HTML5 repairs.
const REPAIRED: [(u32, char); 34] = [
    (0x00, '\u{FFFD}'),
    (0x0d, '\r'),
    (0x80, '\u{20AC}'),
    (0x81, '\u{81}'),
    (0x82, '\u{201A}'),
    (0x83, '\u{0192}'),
    (0x84, '\u{201E}'),
    (0x85, '\u{2026}'),
    (0x86, '\u{2020}'),
    (0x87, '\u{2021}'),
    (0x88, '\u{02C6}'),
    (0x89, '\u{2030}'),
    (0x8a, '\u{0160}'),
    (0x8b, '\u{2039}'),
    (0x8c, '\u{0152}'),
    (0x8d, '\u{8D}'),
    (0x8e, '\u{017D}'),
    (0x8f, '\u{8F}'),
    (0x90, '\u{90}'),
    (0x91, '\u{2018}'),
    (0x92, '\u{2019}'),
    (0x93, '\u{201C}'),
    (0x94, '\u{201D}'),
    (0x95, '\u{2022}'),
    (0x96, '\u{2013}'),
    (0x97, '\u{2014}'),
    (0x98, '\u{02DC}'),
    (0x99, '\u{2122}'),
    (0x9a, '\u{0161}'),
    (0x9b, '\u{203A}'),
    (0x9c, '\u{0153}'),
    (0x9d, '\u{9D}'),
    (0x9e, '\u{017E}'),
    (0x9f, '\u{0178}'),
];

/// Code points a numeric reference may not produce: it is dropped.
fn is_dropped(n: u32) -> bool {
    matches!(n, 0x1..=0x8 | 0xb | 0xe..=0x1f | 0x7f..=0x9f | 0xfdd0..=0xfdef) || (n & 0xfffe) == 0xfffe
}

fn numeric(digits: &str, radix: u32) -> String {
    // any value past U+10FFFF reads the same, so saturate instead of holding a big integer
    let n = digits.chars().try_fold(0u32, |n, c| {
        let d = c.to_digit(radix).expect("the pattern admits digits only");
        Some(n.checked_mul(radix)?.checked_add(d)?.min(0x11_0000))
    });
    let n = match n {
        // Python's int() refuses more than 4300 decimal digits; unescape would raise there
        // (and the release's reward with it): the nearest sane reading is "out of range"
        _ if radix == 10 && digits.len() > INT_MAX_STR_DIGITS => 0x11_0000,
        Some(n) => n,
        None => 0x11_0000,
    };
    if let Some(&(_, c)) = REPAIRED.iter().find(|(k, _)| *k == n) {
        return c.to_string();
    }
    if (0xD800..=0xDFFF).contains(&n) || n > 0x10FFFF {
        return '\u{FFFD}'.to_string();
    }
    if is_dropped(n) {
        return String::new();
    }
    char::from_u32(n).map(String::from).unwrap_or_default()
}

fn replace(body: &str) -> String {
    if let Some(num) = body.strip_prefix('#') {
        let num = num.trim_end_matches(';');
        return match num.strip_prefix(['x', 'X']) {
            Some(hex) => numeric(hex, 16),
            None => numeric(num, 10),
        };
    }
    if let Some(text) = NAMED.get(body) {
        return text.clone();
    }
    // the longest known name (of 2 characters or more) that the body starts with
    let ends: Vec<usize> = body.char_indices().map(|(i, _)| i).skip(2).collect();
    for &end in ends.iter().rev() {
        if let Some(text) = NAMED.get(&body[..end]) {
            return format!("{text}{}", &body[end..]);
        }
    }
    format!("&{body}")
}

/// Python's `html.unescape(text)`.
pub fn unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    REFERENCE.replace_all(text, |c: &Captures| replace(&c[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values are Python 3.11's `html.unescape` on the same input.
    #[test]
    fn unescapes_as_python_does() {
        for (input, want) in [
            ("no references", "no references"),
            ("&quot;Hi,&quot; she said &amp; left", "\"Hi,\" she said & left"),
            ("a&nbsp;b", "a\u{a0}b"),
            ("&amp &lt3 &copy2024", "& <3 ©2024"), // legacy names need no ';'
            ("&notit; &notin;", "¬it; ∉"),         // the longest legacy prefix, else the name
            ("&bogus; & &;", "&bogus; & &;"),      // unknown names stay
            ("&#65;&#x42;&#X43", "ABC"),           // decimal and hex, ';' optional
            ("&#128;&#x9F;&#0;&#13;", "€Ÿ\u{FFFD}\r"), // the windows-1252 repairs
            ("&#xD800;&#1114112;&#99999999999999999999;", "\u{FFFD}\u{FFFD}\u{FFFD}"),
            ("a&#1;b&#xFFFF;c&#x1FFFE;d", "abcd"), // dropped code points
            ("&NotNestedGreaterGreater;", "\u{2AA2}\u{338}"), // two code points
            ("&&amp;", "&&"),
        ] {
            assert_eq!(unescape(input), want, "{input:?}");
        }
    }

    #[test]
    fn the_table_is_whole() {
        // Python's html.entities.html5 has 2231 names, 106 of them legacy ones without ';'
        assert_eq!(NAMED.len(), 2231);
        assert_eq!(NAMED.keys().filter(|k| !k.ends_with(';')).count(), 106);
    }
}
