//! A seeded mutator over bytes: bit flips, interesting bytes and tokens, deletions,
//! duplications, splices from another corpus entry, truncation and long repeats (the
//! inputs that made parsers quadratic or overflow). Same seed, same inputs.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Inputs grow to this many bytes at most, except by a long repeat.
const MAX_LEN: usize = 16 * 1024;

const BYTES: &[u8] = b"\0\xff{}[]\"\\\n\r\t,:.-+e09 =#'";

/// Tokens that parsers of JSON, TOML, numbers and HTTP headers get wrong.
const TOKENS: &[&str] = &[
    "-0",
    "12.0",
    "1e400",
    "-1e400",
    "1e20",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "null",
    "true",
    "\"\"",
    "{}",
    "[]",
    "99999999999999999999",
    "18446744073709551616",
    "-9223372036854775809",
    "-1",
    "0",
    "\u{feff}",
    "\r\n",
    "\\u0000",
    "\\ud800",
    "é",
    "🙂",
    "\u{2028}",
    "=",
    "[judge]",
    "[[x]]",
    "{\"",
    "\":",
    "\"seq\": ",
    "\"event\": \"step\"",
    "```json\n",
    "```",
    "words long",
    " 3000 words long.",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "\"\"\"",
    "'''",
    ".5",
    "0x10",
    "1_000",
];

pub struct Mutator {
    rng: ChaCha8Rng,
}

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.rng.random_range(0..n)
        }
    }

    /// A random position in `0..=len`.
    fn at(&mut self, len: usize) -> usize {
        self.rng.random_range(0..=len)
    }

    /// `input` changed 1 to 4 times; `other` is another corpus entry to splice from.
    pub fn mutate(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut v = input.to_vec();
        for _ in 0..1 + self.below(4) {
            self.once(&mut v, other);
        }
        v
    }

    fn once(&mut self, v: &mut Vec<u8>, other: &[u8]) {
        let len = v.len();
        match self.below(9) {
            0 if len > 0 => {
                let i = self.below(len);
                v[i] ^= 1 << self.below(8);
            }
            1 if len > 0 => {
                let i = self.below(len);
                v[i] = BYTES[self.below(BYTES.len())];
            }
            2 | 3 if len < MAX_LEN => {
                let t = TOKENS[self.below(TOKENS.len())].as_bytes();
                let i = self.at(len);
                v.splice(i..i, t.iter().copied());
            }
            4 if len > 0 => {
                let a = self.below(len);
                let b = (a + 1 + self.below(64.min(len - a))).min(len);
                v.drain(a..b);
            }
            5 if len > 0 && len < MAX_LEN => {
                let a = self.below(len);
                let b = (a + 1 + self.below(256.min(len - a))).min(len);
                let copy = v[a..b].to_vec();
                let i = self.at(len);
                v.splice(i..i, copy);
            }
            6 if !other.is_empty() && len < MAX_LEN => {
                let a = self.below(other.len());
                let b = (a + 1 + self.below(512.min(other.len() - a))).min(other.len());
                let i = self.at(len);
                let j = (i + self.below(512)).min(len);
                v.splice(i..j, other[a..b].iter().copied());
            }
            7 if len > 0 => v.truncate(self.below(len)),
            8 if self.below(8) == 0 => {
                // a long run of one byte or token: 80,000 `{`, a huge number, a huge line
                let unit: Vec<u8> = if self.below(2) == 0 {
                    vec![BYTES[self.below(BYTES.len())]]
                } else {
                    TOKENS[self.below(TOKENS.len())].as_bytes().to_vec()
                };
                let times = 1000 + self.below(80_000 / unit.len().max(1));
                let i = self.at(len);
                v.splice(i..i, unit.iter().copied().cycle().take(unit.len() * times));
            }
            _ => {
                let i = self.at(len);
                v.insert(i, self.rng.random());
            }
        }
    }
}
