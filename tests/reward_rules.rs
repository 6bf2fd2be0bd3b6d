//! Rule components and the composite, against values computed by hand from RECIPE.md.

use polaris::reward::breakdown::{apply_batch_mean, Breakdown, Candidate, SqSource, Weights};
use polaris::reward::rules::*;
use polaris::reward::totals::TotalsReading;
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
    let t = |n: usize| LengthTarget::new(n as f64);
    // T = 3000: lower clamp(450, 350, 1000) = 450, upper clamp(750, 600, 1500) = 750
    assert!(close(t(3000).lower_tolerance(), 450.0) && close(t(3000).upper_tolerance(), 750.0));
    assert!(close(t(3000).penalty(2000), 1.0 - 2000.0 / 2550.0));
    assert_eq!(t(3000).penalty(2550), 0.0);
    assert_eq!(t(3000).penalty(3750), 0.0);
    assert!(close(t(3000).penalty(4500), 0.2));
    assert_eq!(t(3000).penalty(10_000), 1.0);
    assert_eq!(t(3000).penalty(0), 1.0);
    // T = 100 is raised to 150; T - lower < 0, so short is never penalised; 900 > 750 by 20%
    assert_eq!(t(100).words(), 150.0);
    assert_eq!(t(100).penalty(0), 0.0);
    assert!(close(t(100).penalty(900), 0.2));
    // T = 10000: tolerances clamp at 1000 and 1500
    assert!(close(t(10_000).penalty(4500), 0.5));
    assert_eq!(length_band(3000), (2550.0, 3750.0));
}

/// The release's values (reward/components at 50177c1, run on these texts) to 1e-12: every
/// value below is computed by hand, and each text is one where the project differed before.
const RELEASE: f64 = 1e-12;

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= RELEASE
}

fn words(n: usize) -> String {
    vec!["w"; n].join(" ")
}

#[test]
fn the_local_window_reaches_63_positions_back() {
    let distinct = |n: usize| (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    // 64 distinct tokens then w0 w1 w2 w3: 65 grams, the last repeats the first 64 back: not local
    let r = self_repetition(&format!("{} w0 w1 w2 w3", distinct(64)));
    assert!(near(r.ngram_ratio, 1.0 / 65.0) && r.local_ratio == 0.0 && r.penalty == 0.0, "{r:?}");
    // 63 back: local. penalty 0.8 (0.7 max(0, 1/64 - 0.08) + 0.3 / 64) = 0.00375
    let r = self_repetition(&format!("{} w0 w1 w2 w3", distinct(63)));
    assert!(near(r.local_ratio, 1.0 / 64.0) && near(r.penalty, 0.00375), "{r:?}");
}

#[test]
fn lines_break_as_python_splits_them() {
    // a b \r c d \r a b: three lines, one a repeat; the 4-grams abcd bcda cdab do not repeat
    let r = self_repetition("a b\rc d\ra b");
    assert!(near(r.line_ratio, 1.0 / 3.0) && near(r.penalty, 0.4 / 3.0), "{r:?}");
    // \x1c separates lines too, and \x1f (whitespace) is stripped from a line's ends
    assert!(near(self_repetition("a b\x1ca b\x1f").line_ratio, 0.5));
}

#[test]
fn tokens_are_pythons_word_characters() {
    // a combining accent is not a word character in Python: e, U+0301, e, U+0301, ... are
    // 8 tokens, 5 grams, 3 of them repeats 2 back: 0.8 (0.7 (0.6 - 0.08) + 0.3 * 0.6) = 0.4352
    let r = self_repetition("e\u{301} e\u{301} e\u{301} e\u{301}");
    assert!(near(r.ngram_ratio, 0.6) && near(r.penalty, 0.4352), "{r:?}");
    // numbers of every kind are word characters; a connector other than _ is not
    assert_eq!(story_words("x² ½ a‿b"), 4);
}

#[test]
fn the_length_sentence_is_read_in_any_case_and_spacing() {
    // "3000 Words Long": T = 3000, band [2550, 3750]; 2000 words: 1 - 2000/2550
    let t = LengthTarget::of("Write a tale. It should be 3000 Words Long.", None);
    assert_eq!(t.words(), 3000.0);
    assert!(near(t.penalty(2000), 1.0 - 2000.0 / 2550.0));
    assert_eq!(LengthTarget::of("3000\u{a0}WORDS\x1clong", None).words(), 3000.0);
    assert_eq!(LengthTarget::of("٣٠٠٠ words long", None).words(), 3000.0);
    // absurd numbers: 10^30 - 1 is far past any story, penalty 1 (1 - wc / ~1e30)
    let t = LengthTarget::of(&format!("{} words long", "9".repeat(30)), None);
    assert_eq!(t.penalty(1000), 1.0);
    // past f64 (the release raises OverflowError there): an infinite target, penalty 1
    assert_eq!(LengthTarget::of(&format!("{} words long", "9".repeat(400)), None).penalty(1000), 1.0);
}

#[test]
fn tolerances_are_whole_words() {
    // T = 3003: lower int(450.45) = 450, upper int(750.75) = 750, band [2553, 3753]
    let t = LengthTarget::new(3003.0);
    assert_eq!((t.lower_tolerance(), t.upper_tolerance()), (450.0, 750.0));
    assert!(near(t.penalty(2552), 1.0 - 2552.0 / 2553.0));
    assert_eq!(t.penalty(2553), 0.0);
    assert!(near(t.penalty(3754), 3754.0 / 3753.0 - 1.0));
}

#[test]
fn a_prompt_without_a_length_sentence_aims_at_the_references_words() {
    // reference of 1000 words: T = 1000, lower 350, upper 600, band [650, 1600]; 325: 0.5
    let reference = words(1000);
    let t = LengthTarget::of("A tale about ships.", Some(&reference));
    assert_eq!(t.band(), (650.0, 1600.0));
    assert!(near(t.penalty(325), 0.5));
    // "0 words long" is no target either; nor is a number past Python's 4300 digits
    assert!(near(LengthTarget::of("It is 0 words long.", Some(&reference)).penalty(325), 0.5));
    let huge = format!("{} words long", "1".repeat(4301));
    assert!(near(LengthTarget::of(&huge, Some(&reference)).penalty(325), 0.5));
    // no reference: T = 150, band [-200, 750]; 900 words: 900/750 - 1 = 0.2
    assert!(near(LengthTarget::of("A tale about ships.", None).penalty(900), 0.2));
    // through the breakdown
    let c = Candidate {
        prompt: "A tale about ships.".into(),
        story: words(325),
        response: None,
        reference: Some(reference),
    };
    let b = Breakdown::rules(&c, Weights::training());
    assert!(near(b.length_penalty, 0.5) && b.requested_words.is_none());
    assert_eq!(b.length_target.map(LengthTarget::words), Some(1000.0));
}

#[test]
fn words_and_visible_characters_are_counted_after_html_unescaping() {
    // "&quot;word&quot; " is one word: 100 copies are blank (under 150), 150 are not
    assert_eq!(blank_penalty(&"&quot;word&quot; ".repeat(100)), 1.0);
    assert_eq!(blank_penalty(&"&quot;word&quot; ".repeat(150)), 0.0);
    assert_eq!(story_words("&quot;Hi,&quot; she said&nbsp;&amp; left"), 4);
    // T = 200, band [-150, 800]: 150 words sit 50 under the target: reward 1 - 50/350
    let b = Breakdown::rules(
        &Candidate {
            prompt: "It is 200 words long.".into(),
            story: "&quot;word&quot; ".repeat(150),
            response: None,
            reference: None,
        },
        Weights::training(),
    );
    assert_eq!(b.words, 150);
    assert!(near(b.length_reward, 1.0 - 50.0 / 350.0));
    // \x1f is whitespace: a then ten of them is 1 visible of 11 (< 10%); a then nine, 10%
    assert_eq!(blank_penalty(&format!("a{}", "\x1f".repeat(10)).repeat(150)), 1.0);
    assert_eq!(blank_penalty(&format!("a{}", "\x1f".repeat(9)).repeat(150)), 0.0);
}

#[test]
fn the_length_reward_is_the_releases_triangle() {
    // T = 3000: 2775 is 225 under (of 450): 0.5; 3375 is 375 over (of 750): 0.5; outside: 0
    let t = LengthTarget::new(3000.0);
    assert!(near(t.reward(2775, false), 0.5) && near(t.reward(3375, false), 0.5));
    assert_eq!((t.reward(3000, false), t.reward(2000, false), t.reward(3000, true)), (1.0, 0.0, 0.0));
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
        totals: TotalsReading::Parts,
        reported: None,
    }
}

fn breakdown(prompt: &str, story: &str, sq: Option<f64>, w: Weights) -> Breakdown {
    let mut b = Breakdown::rules(
        &Candidate { prompt: prompt.into(), story: story.into(), response: None, reference: None },
        w,
    );
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
