//! Pairwise judging: both orders, position bias cancelling, the combined preference.

use polaris::reward::judge::http::Usage;
use polaris::reward::judge::{JudgeClient, JudgeSettings, JudgeSpec};
use polaris::reward::pairwise::{combine, judge_pair, PairwisePrompt, Shown, Verdict};
use polaris::reward::Rubric;
use serde_json::json;

fn verdict(winner: Shown, margin: i64) -> Verdict {
    Verdict { winner, margin, criteria: vec![], answer: json!({}) }
}

#[test]
fn a_judge_that_always_picks_the_first_story_cancels_out() {
    // pure position bias: "1" wins by 2 in both orders
    let r = combine(Ok(verdict(Shown::First, 2)), Ok(verdict(Shown::First, 2)), Usage::default());
    assert_eq!(r.preference, 0.0);
    assert!(!r.consistent);
    // bias on top of a real preference for A: A by 3 when first, A by 1 when second
    let r = combine(Ok(verdict(Shown::First, 3)), Ok(verdict(Shown::Second, 1)), Usage::default());
    assert!((r.preference - (3.0 + 1.0) / 2.0 / 3.0).abs() < 1e-12);
    assert!((r.margin - 2.0).abs() < 1e-12);
    assert!(r.consistent);
    // B decisively in both orders
    let r = combine(Ok(verdict(Shown::Second, 3)), Ok(verdict(Shown::First, 3)), Usage::default());
    assert_eq!(r.preference, -1.0);
    // one order failed: the other stands alone, and it is not called consistent
    let r = combine(Ok(verdict(Shown::First, 2)), Err("gave up".into()), Usage::default());
    assert!((r.preference - 2.0 / 3.0).abs() < 1e-12);
    assert!(!r.consistent);
}

#[test]
fn the_builtin_pairwise_prompt_loads() {
    let p = PairwisePrompt::builtin().unwrap();
    assert!(p.criteria.len() >= 5);
    for c in &p.criteria {
        assert!(p.schema["properties"].get(format!("{}_winner", c.key)).is_some());
        assert!(p.system.contains(&c.key));
    }
    assert!(PairwisePrompt::from_toml_str(
        "name='x'\ninstructions='i'\nuser_template='{prompt}'\n[[criterion]]\nkey='a'",
        "t"
    )
    .is_err());
}

#[tokio::test]
async fn offline_pairs_prefer_the_better_story_in_both_orders() {
    let client =
        JudgeClient::new(JudgeSpec::Offline, Rubric::builtin().unwrap(), JudgeSettings::default()).unwrap();
    let prompt =
        "Write a story about a lighthouse keeper who finds a letter. The story should be 300 words long.";
    let good = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/models/stories260K-hf/golden_greedy_text.txt"
    ))
    .unwrap()
        + "\n\nThe lighthouse keeper found a letter in the rain by the cold stone door.";
    let bad = "the letter the letter the letter the letter. ".repeat(40);
    let r = judge_pair(&client, &PairwisePrompt::builtin().unwrap(), prompt, &good, &bad).await;
    assert!(r.preference > 0.0, "{r:?}");
    assert!(r.consistent);
    let swapped = judge_pair(&client, &PairwisePrompt::builtin().unwrap(), prompt, &bad, &good).await;
    assert!((swapped.preference + r.preference).abs() < 1e-12);
}
