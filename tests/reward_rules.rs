//! Rule components and the composite, against values computed by hand from RECIPE.md.

use polaris::reward::breakdown::{apply_batch_mean, Breakdown, Candidate, SqSource, Weights};
use polaris::reward::rules::*;
use polaris::reward::Judgement;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn self_repetition_by_hand() {
    // tokens a b c d a b c d: 4-grams abcd bcda cdab dabc abcd -> 1 repeat of 5, 4 positions back
    let r = self_repetition("a b c d a b c d");
    assert!(close(r.ngram_ratio, 0.2) && close(r.local_ratio, 0.2) && close(r.line_ratio, 0.0), "{r:?}");
    // 0.8 * (0.7 * (0.2 - 0.08) + 0.3 * 0.2) = 0.1152
    assert!(close(r.penalty, 0.1152), "{r:?}");

    // punctuation marks are tokens: yes ! yes ! yes ! yes ! -> 5 grams, 3 repeats
    let r = self_repetition("Yes! Yes! Yes! Yes!");
    assert!(close(r.ngram_ratio, 0.6) && close(r.local_ratio, 0.6));
    assert!(close(r.penalty, 0.8 * (0.7 * 0.52 + 0.3 * 0.6)), "{r:?}");

    // a duplicate line: lines [x y, x y, z] -> 1/3; no repeated 4-gram in x y x y z
    let r = self_repetition("x y\nx y\n\nz");
    assert!(close(r.line_ratio, 1.0 / 3.0) && close(r.ngram_ratio, 0.0));
    assert!(close(r.penalty, 0.4 / 3.0));

    // a repeat 100 positions back counts for ngram_ratio, not for the 64-position window
    let words: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
    let text = format!("{} w0 w1 w2 w3", words.join(" "));
    let r = self_repetition(&text);
    assert!(close(r.ngram_ratio, 1.0 / 101.0) && close(r.local_ratio, 0.0), "{r:?}");

    // case is folded: the . cat sat down . -> 7 grams, "the cat sat down" and "cat sat down ." recur
    assert!(close(self_repetition("The cat sat down. the CAT sat down.").ngram_ratio, 2.0 / 7.0));
    // fewer than four tokens have no 4-grams
    assert_eq!(self_repetition("too short").penalty, 0.0);
}

#[test]
fn length_penalty_by_hand() {
    // T = 3000: lower clamp(450, 350, 1000) = 450, upper clamp(750, 600, 1500) = 750
    assert!(close(lower_tolerance(3000), 450.0) && close(upper_tolerance(3000), 750.0));
    assert!(close(length_penalty(2000, 3000), 1.0 - 2000.0 / 2550.0));
    assert_eq!(length_penalty(2550, 3000), 0.0);
    assert_eq!(length_penalty(3750, 3000), 0.0);
    assert!(close(length_penalty(4500, 3000), 0.2));
    assert_eq!(length_penalty(10_000, 3000), 1.0);
    assert_eq!(length_penalty(0, 3000), 1.0);
    // T = 100 is raised to 150; T - lower < 0, so short is never penalised; 900 > 750 by 20%
    assert_eq!(length_penalty(0, 100), 0.0);
    assert!(close(length_penalty(900, 100), 0.2));
    // T = 10000: tolerances clamp at 1000 and 1500
    assert!(close(length_penalty(4500, 10_000), 0.5));
    assert!(close(length_reward(4500, 10_000), 0.5));
}

#[test]
fn blank_and_overlong_by_hand() {
    assert_eq!(blank_penalty(&"word ".repeat(149)), 1.0);
    assert_eq!(blank_penalty(&"word ".repeat(150)), 0.0);
    // 150 words but under 10% visible characters
    assert_eq!(blank_penalty(&format!("a{}", " ".repeat(20)).repeat(150)), 1.0);
    assert_eq!(blank_penalty(""), 1.0);
    // 8192 budget, 512-token window from 7680
    assert!(close(overlong_penalty(8000, false, 8192, 512), -320.0 / 512.0));
    assert_eq!(overlong_penalty(8192, false, 8192, 512), -1.0);
    assert_eq!(overlong_penalty(7680, false, 8192, 512), 0.0);
    assert_eq!(overlong_penalty(8100, true, 8192, 512), 0.0);
}

fn judged(sq: f64) -> Judgement {
    Judgement {
        dimensions: vec![],
        positive_total: 0,
        negative_total: 0,
        bonus: 0,
        penalty: 0,
        bonus_applied: 0,
        penalty_applied: 0,
        bonus_evidence: vec![],
        penalty_evidence: vec![],
        overall: (sq * 100.0).round() as i64,
        reported_overall: None,
        story_quality: sq,
    }
}

fn breakdown(prompt: &str, story: &str, sq: Option<f64>, w: Weights) -> Breakdown {
    let mut b =
        Breakdown::rules(&Candidate { prompt: prompt.into(), story: story.into(), response: None }, w);
    if let Some(sq) = sq {
        b.story_quality = sq;
        b.judgement = Some(judged(sq));
    } else {
        b.judge_failure = Some("the judge gave up".into());
    }
    b
}

#[test]
fn composite_weights_clip_and_batch_mean() {
    // 300 distinct words: no repetition, not blank; asked for 3000 -> 1 - 300/2550
    let story: String = (0..300).map(|i| format!("w{i} ")).collect();
    let prompt = "Write a tale. The story should be 3000 words long.";
    let len = 1.0 - 300.0 / 2550.0;
    let mut batch = vec![
        breakdown(prompt, &story, Some(0.4), Weights::training()),
        breakdown(prompt, &story, Some(0.6), Weights::training()),
        breakdown(prompt, &story, None, Weights::training()),
    ];
    apply_batch_mean(&mut batch);
    assert!(close(batch[0].reward, 0.4 - 0.8 * len), "{}", batch[0].reward);
    assert_eq!(batch[2].story_quality_source, SqSource::BatchMean);
    assert!(close(batch[2].story_quality, 0.5));
    assert!(close(batch[2].reward, 0.5 - 0.8 * len));
    assert_eq!(batch[2].words, 300);
    assert_eq!(batch[2].requested_words, Some(3000));
    assert!(close(batch[2].length_ratio.unwrap(), 0.1));

    // validation weights: w_len 0.2
    let mut v = vec![breakdown(prompt, &story, Some(0.4), Weights::validation())];
    apply_batch_mean(&mut v);
    assert!(close(v[0].reward, 0.4 - 0.2 * len));

    // blank + far off length + the worst Story Quality: composite below -2 is clipped
    let mut worst = vec![breakdown(prompt, "no", Some(-1.59), Weights::training())];
    apply_batch_mean(&mut worst);
    // one word of 3000: length penalty 1 - 1/2550
    assert!(
        close(worst[0].composite, -1.59 - 0.8 * (1.0 - 1.0 / 2550.0) - 1.0 * 1.0),
        "{}",
        worst[0].composite
    );
    assert_eq!(worst[0].reward, -2.0);

    // nothing succeeded: Story Quality 0, said so
    let mut none = vec![breakdown(prompt, &story, None, Weights::training())];
    apply_batch_mean(&mut none);
    assert_eq!(none[0].story_quality_source, SqSource::None);
    assert_eq!(none[0].story_quality, 0.0);
}
