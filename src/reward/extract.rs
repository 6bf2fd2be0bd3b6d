//! Finding a judge's JSON object in its reply (the whole reply, a ```json fence, or the
//! first balanced {...} inside prose) in time linear in the reply's length, and reading
//! integral numbers written as floats (`12.0`, `-0`) as the integers they are.

use std::ops::Range;

use serde_json::{Number, Value};

/// Balanced {...} spans handed to the JSON parser at most. A parse stops at the first byte
/// that cannot continue the object, so each costs at most one pass over the reply: the whole
/// search is at most (3 + MAX_CANDIDATES) passes, whatever the reply holds (80,000 `{`
/// included, which once took 14 s).
pub const MAX_CANDIDATES: usize = 64;

/// The first complete JSON object in `text`, its integral numbers as integers.
pub fn extract_json(text: &str) -> Option<Value> {
    let mut v = find_object(text)?;
    integral_numbers(&mut v);
    Some(v)
}

fn find_object(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(v @ Value::Object(_)) = serde_json::from_str(t) {
        return Some(v);
    }
    if let Some(start) = t.find("```") {
        let after = &t[start + 3..];
        let body = after.trim_start_matches(|c: char| c.is_ascii_alphabetic());
        if let Some(end) = body.find("```") {
            if let Ok(v @ Value::Object(_)) = serde_json::from_str(body[..end].trim()) {
                return Some(v);
            }
        }
    }
    candidates(t).into_iter().find_map(|r| match serde_json::from_str(&t[r]) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    })
}

/// The balanced {...} spans of `text` in order of their start (the first MAX_CANDIDATES),
/// found in one pass: braces inside a string of an open object do not count; outside every
/// object (prose) quotes mean nothing.
pub fn candidates(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    // starts of every `{` opened, in order, and where each closed (0: never)
    let (mut starts, mut ends): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    let mut open: Vec<usize> = Vec::new(); // indexes into starts
    let (mut in_str, mut esc) = (false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' if !open.is_empty() => in_str = true,
            b'{' => {
                open.push(starts.len());
                starts.push(i);
                ends.push(0);
            }
            b'}' => {
                if let Some(k) = open.pop() {
                    ends[k] = i + 1;
                }
            }
            _ => {}
        }
    }
    starts.into_iter().zip(ends).filter(|&(_, e)| e > 0).map(|(s, e)| s..e).take(MAX_CANDIDATES).collect()
}

/// Rewrites every float with no fractional part that an i64 holds (`12.0`, `-0`, `1e2`) as
/// that integer, as JSON Schema counts them: the scores, the pairwise margin and any
/// draft's "integer" then read them alike.
pub fn integral_numbers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // the i64 range: -2^63 ..= 2^63 - 1 (2^63 as f64 is out)
            if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                *n = Number::from(f as i64);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_numbers),
        Value::Object(o) => o.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_fenced_and_in_prose() {
        assert_eq!(extract_json(" {\"a\": 1} "), Some(json!({"a": 1})));
        assert_eq!(extract_json("Here:\n```json\n{\"a\": 2}\n```\nDone."), Some(json!({"a": 2})));
        assert_eq!(
            extract_json("I think {\"a\": \"}{\", \"b\": 3} is fair."),
            Some(json!({"a": "}{", "b": 3}))
        );
        // an unclosed brace of prose before the object
        assert_eq!(extract_json("Sure { here: {\"a\": 4}"), Some(json!({"a": 4})));
        // a {placeholder} first, then the answer
        assert_eq!(extract_json("Using {prompt}: {\"a\": 5}"), Some(json!({"a": 5})));
        // an outer object wins over the ones inside it
        assert_eq!(extract_json("x {\"a\": {\"b\": 1}} y"), Some(json!({"a": {"b": 1}})));
        // quotes in prose do not hide the object
        assert_eq!(extract_json("He said \"hi {x}. Then {\"a\": 6}"), Some(json!({"a": 6})));
        assert_eq!(extract_json("no object [1, 2]"), None);
    }

    #[test]
    fn the_work_is_bounded_by_the_structure() {
        // 80,000 unclosed braces: no span closes, so nothing is parsed beyond the first tries
        let braces = "{".repeat(80_000);
        assert!(candidates(&braces).is_empty());
        assert_eq!(extract_json(&braces), None);
        // 40,000 nested objects: the parse attempts are capped
        let nested = format!("{}{}", "{\"a\":".repeat(40_000), "}".repeat(40_000));
        assert_eq!(candidates(&nested).len(), MAX_CANDIDATES);
        assert_eq!(extract_json(&nested), None); // deeper than serde_json's recursion limit
                                                 // 100,000 empty objects of prose: the first is the answer
        let many = "{} ".repeat(100_000);
        assert_eq!(candidates(&many).len(), MAX_CANDIDATES);
        assert_eq!(extract_json(&many), Some(json!({})));
        // spans come in order of their start, every one balanced
        let text = "a {b {c} d} {e}";
        let spans: Vec<&str> = candidates(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(spans, vec!["{b {c} d}", "{c}", "{e}"]);
    }

    #[test]
    fn integral_floats_are_integers() {
        let v =
            extract_json("{\"a\": 12.0, \"b\": -0, \"c\": 1e2, \"d\": 0.5, \"e\": [3.0, 1e300], \"f\": -7}")
                .unwrap();
        assert_eq!(v, json!({"a": 12, "b": 0, "c": 100, "d": 0.5, "e": [3, 1e300], "f": -7}));
        assert!(v["a"].is_i64() && v["b"].is_i64() && v["e"][1].is_f64());
    }
}
