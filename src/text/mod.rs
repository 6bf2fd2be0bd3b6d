//! Text as the POLARIS release's Python reward code reads it: Python's `\w` and whitespace
//! classes, `str.splitlines` and `str.strip`, decimal digits of any script, `html.unescape`.
//! Words, lines and length requests are counted with these everywhere, so the rule components
//! equal the release's on any text.

pub mod html;
pub mod python;
