//! Human-evaluation statistics against hand-computed values.

use polaris::eval::stats::agreement::{cohens_kappa, raw_agreement};
use polaris::eval::stats::winrate::{bootstrap_ci, percentile, win_rate, Preference};
use Preference::{AWins, BWins, Tie};

/// Sums of a handful of halves and ones: exact in binary, so compared to 1e-12.
const EXACT: f64 = 1e-12;

#[test]
fn win_rate_counts_ties_as_half() {
    // 3 wins, 1 loss, 2 ties: (3 + 0 + 2 * 0.5) / 6 = 4 / 6.
    let prefs = [AWins, AWins, BWins, Tie, AWins, Tie];
    assert!((win_rate(&prefs).unwrap() - 4.0 / 6.0).abs() < EXACT);
    assert_eq!(win_rate(&[Tie, Tie]), Some(0.5));
    assert_eq!(win_rate(&[]), None);
}

#[test]
fn percentile_interpolates_like_numpy() {
    // numpy.percentile([1, 2, 3, 4], 2.5) = 1 + 0.025 * 3 = 1.075; 97.5 -> 3.925.
    let v = [1.0, 2.0, 3.0, 4.0];
    assert!((percentile(&v, 2.5) - 1.075).abs() < EXACT);
    assert!((percentile(&v, 97.5) - 3.925).abs() < EXACT);
    assert_eq!(percentile(&v, 0.0), 1.0);
    assert_eq!(percentile(&v, 100.0), 4.0);
}

fn prompts(scores: &[Preference]) -> Vec<Vec<Preference>> {
    scores.iter().map(|&p| vec![p]).collect()
}

#[test]
fn bootstrap_is_reproducible_with_a_seed_and_varies_without() {
    let data = prompts(&[AWins, BWins, Tie, AWins, AWins, BWins, AWins, Tie, AWins, BWins]);
    let first = bootstrap_ci(&data, 2000, 7).unwrap();
    assert_eq!(first, bootstrap_ci(&data, 2000, 7).unwrap(), "same seed, same interval, bit for bit");
    assert_ne!(first, bootstrap_ci(&data, 2000, 8).unwrap(), "another seed draws other resamples");
    let rate = win_rate(&data.concat()).unwrap();
    assert!(first.low < rate && rate < first.high, "{first:?} around {rate}");
}

#[test]
fn bootstrap_bounds_by_hand() {
    // Every comparison a win: every resample's rate is 1.
    let all = prompts(&[AWins; 12]);
    let ci = bootstrap_ci(&all, 1000, 0).unwrap();
    assert_eq!((ci.low, ci.high), (1.0, 1.0));
    // Two prompts, a win and a loss: a resample's rate is 0, 1/2 or 1 with chance 1/4,
    // 1/2, 1/4. The chance that under 2.5% of 5000 resamples are 0 is about 1e-200,
    // so the 2.5th percentile is 0 and the 97.5th is 1.
    let ci = bootstrap_ci(&prompts(&[AWins, BWins]), 5000, 3).unwrap();
    assert_eq!((ci.low, ci.high), (0.0, 1.0));
}

#[test]
fn bootstrap_matches_the_normal_approximation() {
    // 60 prompts, 36 wins: rate 0.6, standard error sqrt(0.6 * 0.4 / 60) = 0.0632, so
    // the 95% interval is about 0.6 +- 1.96 * 0.0632 = [0.476, 0.724]. Tolerance 0.025:
    // the resampled rates move in steps of 1/60 = 0.017 and 20000 resamples leave a
    // Monte Carlo error near 0.003 at the 2.5th and 97.5th percentiles.
    let mut scores = vec![AWins; 36];
    scores.extend([BWins; 24]);
    let ci = bootstrap_ci(&prompts(&scores), 20_000, 11).unwrap();
    assert!((ci.low - 0.476).abs() < 0.025, "{ci:?}");
    assert!((ci.high - 0.724).abs() < 0.025, "{ci:?}");
}

#[test]
fn bootstrap_resamples_prompts_not_judgments() {
    // Two annotators who agree on every prompt add no information about prompts: with the
    // prompt as the resampling unit the interval is the one annotator's, exactly (the
    // same draws, every sum and count doubled). Resampling judgments would narrow it.
    let one = [AWins, BWins, Tie, AWins, AWins, BWins, AWins, Tie, AWins, BWins, BWins, AWins];
    let single = prompts(&one);
    let double: Vec<Vec<Preference>> = one.iter().map(|&p| vec![p, p]).collect();
    assert_eq!(bootstrap_ci(&single, 3000, 5).unwrap(), bootstrap_ci(&double, 3000, 5).unwrap());
}

#[test]
fn bootstrap_refuses_too_few_resamples_or_no_data() {
    let err = bootstrap_ci(&prompts(&[AWins]), 999, 0).unwrap_err().to_string();
    assert!(err.contains("at least 1000"), "{err}");
    assert!(bootstrap_ci(&[vec![], vec![]], 1000, 0).is_err());
}

#[test]
fn kappa_on_the_textbook_example() {
    // Wikipedia, "Cohen's kappa", worked example: 50 grant proposals, two readers;
    // both yes 20, A yes B no 5, A no B yes 10, both no 15. p_o = 0.7, p_e = 0.5,
    // kappa = 0.4 (published value).
    let mut pairs = vec![("yes", "yes"); 20];
    pairs.extend([("yes", "no"); 5]);
    pairs.extend([("no", "yes"); 10]);
    pairs.extend([("no", "no"); 15]);
    assert!((raw_agreement(&pairs).unwrap() - 0.7).abs() < EXACT);
    assert!((cohens_kappa(&pairs).unwrap() - 0.4).abs() < 1e-12);
}

#[test]
fn kappa_over_three_labels_by_hand() {
    // Counts (rows: first annotator A/B/tie, columns: second):
    //   A: 10 2 3 | B: 1 8 1 | tie: 2 1 2, n = 30.
    // p_o = 20/30; margins 15/10/5 and 13/11/6, so p_e = (15*13 + 10*11 + 5*6) / 900
    // = 335/900; kappa = (600 - 335) / (900 - 335) = 265/565 = 53/113.
    let cells = [
        ((AWins, AWins), 10),
        ((AWins, BWins), 2),
        ((AWins, Tie), 3),
        ((BWins, AWins), 1),
        ((BWins, BWins), 8),
        ((BWins, Tie), 1),
        ((Tie, AWins), 2),
        ((Tie, BWins), 1),
        ((Tie, Tie), 2),
    ];
    let pairs: Vec<(Preference, Preference)> =
        cells.iter().flat_map(|&(pair, n)| std::iter::repeat_n(pair, n)).collect();
    assert!((raw_agreement(&pairs).unwrap() - 20.0 / 30.0).abs() < EXACT);
    assert!((cohens_kappa(&pairs).unwrap() - 53.0 / 113.0).abs() < 1e-12);
}

#[test]
fn kappa_edge_cases() {
    // Perfect agreement over two labels: p_o = 1, kappa = 1.
    assert_eq!(cohens_kappa(&[(AWins, AWins), (BWins, BWins)]), Some(1.0));
    // One label throughout: p_e = 1, kappa undefined.
    assert_eq!(cohens_kappa(&[(Tie, Tie), (Tie, Tie)]), None);
    assert_eq!(cohens_kappa::<Preference>(&[]), None);
    // Systematic disagreement: p_o = 0, p_e = 0.5, kappa = -1.
    assert_eq!(cohens_kappa(&[(AWins, BWins), (BWins, AWins)]), Some(-1.0));
}
