//! The repair retry's pieces: a bounded excerpt of the unusable reply (an 8k-token broken reply
//! sent back whole overflowed a 32k context), and the words for a reply cut at the token limit.

/// Characters of an unusable reply the repair request carries at most (~500 tokens): its
/// start and its end, where JSON goes wrong.
pub const EXCERPT_CHARS: usize = 2000;

/// `reply` whole when short; else its first and last EXCERPT_CHARS / 2 characters around a
/// note of how many were left out.
pub fn excerpt(reply: &str) -> String {
    let n = reply.chars().count();
    if n <= EXCERPT_CHARS {
        return reply.to_string();
    }
    let half = EXCERPT_CHARS / 2;
    let head: String = reply.chars().take(half).collect();
    let tail: String = reply.chars().skip(n - half).collect();
    format!("{head}\n[... {} characters left out ...]\n{tail}", n - 2 * half)
}

/// The recorded failure of a reply that stopped at the token limit (finish_reason `length` /
/// `MAX_TOKENS`) before it could be read.
pub fn cut_at_limit(max_tokens: u32, error: &str) -> String {
    format!(
        "the reply was cut at the token limit (judge.max_tokens = {max_tokens}) before it was complete: {error}; \
         raise judge.max_tokens or ask for shorter justifications"
    )
}

/// What the judge is told about its own cut reply in the repair request.
pub fn cut_for_judge(error: &str) -> String {
    format!(
        "it was cut off at the length limit before the JSON object was complete ({error}); \
         keep every justification short so the whole object fits"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_reply_keeps_its_ends_within_the_bound() {
        let short = "{\"a\": 1";
        assert_eq!(excerpt(short), short);
        // 100k characters, multi-byte ones included, so the cut falls between characters
        let long = format!("{{\"start\": \"{}", "é{".repeat(50_000)) + "END";
        let e = excerpt(&long);
        assert!(e.chars().count() <= EXCERPT_CHARS + 64, "{}", e.chars().count());
        assert!(e.starts_with("{\"start\"") && e.ends_with("END"));
        assert!(e.contains(&format!("{} characters left out", long.chars().count() - EXCERPT_CHARS)));
    }

    #[test]
    fn truncation_is_named() {
        let e = cut_at_limit(8192, "the reply holds no JSON object");
        assert!(e.contains("cut at the token limit") && e.contains("8192") && e.contains("no JSON object"));
        assert!(cut_for_judge("x").contains("cut off"));
    }
}
