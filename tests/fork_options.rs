//! The POLARIS fork's options that its main run leaves off (RECIPE.md, "Training loop
//! details"), each on a case computed by hand: behaviour cloning on the reference, the
//! reference's own clip pair, reference_best (gt_override_best), the GRPO score clip and the
//! disqualification gates. Tolerances are 1e-12 unless said: each value is a few float
//! operations on numbers near 1.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use candle_core::{DType, Device};
use common::WordsReward;
use polaris::model::all_trainable;
use polaris::reward::breakdown::{apply_batch_mean, Breakdown, Candidate, Response, SqSource, Weights};
use polaris::reward::disqualify::{DisqualifyGates, Gate};
use polaris::reward::judge::{JudgeClient, JudgeSettings, JudgeSpec};
use polaris::reward::rows::{score_rows, RowRules};
use polaris::reward::rubric::Sign;
use polaris::reward::score::{ScoreMode, Scoring};
use polaris::reward::{DimensionScore, Judgement, Rubric};
use polaris::train::bc::BcConfig;
use polaris::train::loss::{grpo_loss, grpo_loss_part, BatchTotals, LossConfig, LossOutput, RowTerms};
use polaris::train::step::{Rewarder, StepConfig, TrainPrompt, Trainer};
use polaris::train::workers::Workers;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn behaviour_cloning_adds_the_references_mean_nll_times_its_coefficient() {
    // ratio 1 (first epoch). A policy row of 2 tokens (A = 1) and the reference of 3 tokens
    // (A = 0.5, HRI weight 0.4, BC coefficient 0.1); 5 tokens, 3 of them the reference's
    let policy = [-1.0, -2.0];
    let reference = [-0.5, -1.0, -1.5];
    let rows = [
        RowTerms::policy(&policy, 1.0),
        RowTerms { weight: 0.4, reference: true, bc_coef: 0.1, ..RowTerms::policy(&reference, 0.5) },
    ];
    let new = vec![policy.to_vec(), reference.to_vec()];
    let out = grpo_loss(&LossConfig::default(), &rows, &new);
    // surrogate: (−1 −1 + 3·(−0.5·0.4)) / 5 = −0.52; BC: 0.1 · (0.5 + 1 + 1.5) / 3 = 0.1
    assert!(close(out.loss, -0.42), "{}", out.loss);
    assert_eq!(out.bc_nll, Some(1.0));
    // dL/dlogp: policy −1/5; reference −0.5·0.4/5 − 0.1/3
    assert!(out.coefficients[0].iter().all(|&c| close(c, -0.2)));
    assert!(out.coefficients[1].iter().all(|&c| close(c, -0.04 - 0.1 / 3.0)), "{:?}", out.coefficients[1]);
    // the rows in two parts (micro-batches) with the batch's totals sum to the whole
    let totals = BatchTotals::of(&rows);
    assert_eq!((totals.tokens, totals.reference_tokens), (5, 3));
    let cfg = LossConfig::default();
    let parts = [
        grpo_loss_part(&cfg, &rows[..1], &new[..1], totals),
        grpo_loss_part(&cfg, &rows[1..], &new[1..], totals),
    ];
    let merged = LossOutput::merge(&parts);
    assert!(close(merged.loss, -0.42) && merged.bc_nll == Some(1.0));
    // BC alone (no HRI: weight 0, advantage 0): only −0.1/3 per reference token
    let bc_only =
        [RowTerms { weight: 0.0, reference: true, bc_coef: 0.1, ..RowTerms::policy(&reference, 0.0) }];
    let out = grpo_loss(&LossConfig::default(), &bc_only, &new[1..]);
    assert!(close(out.loss, 0.1) && out.coefficients[0].iter().all(|&c| close(c, -0.1 / 3.0)));
}

#[test]
fn the_reference_row_has_its_own_clip_pair() {
    // one token per row; both rows alike, the second the reference
    let old = [-1.0];
    let case = |ratio: f64, a: f64, cfg: &LossConfig| -> LossOutput {
        let new = vec![vec![-1.0 + ratio.ln()]; 2];
        let rows = [RowTerms::policy(&old, a), RowTerms { reference: true, ..RowTerms::policy(&old, a) }];
        grpo_loss(cfg, &rows, &new)
    };
    let own =
        LossConfig { reference_clip_low: Some(0.1), reference_clip_high: Some(0.2), ..Default::default() };
    // ratio 1.25, A = +1: inside the policy's [0.8, 1.28], above the reference's 1.2
    let out = case(1.25, 1.0, &own);
    assert!(close(out.coefficients[0][0], -1.25 / 2.0) && out.coefficients[1][0] == 0.0);
    assert!(close(out.loss, (-1.25 - 1.2) / 2.0) && close(out.clip_frac_high, 0.5));
    // ratio 0.85, A = −1: inside the policy's range, below the reference's 0.9
    let out = case(0.85, -1.0, &own);
    assert!(close(out.coefficients[0][0], 0.85 / 2.0) && out.coefficients[1][0] == 0.0);
    assert!(close(out.loss, (0.85 + 0.9) / 2.0) && close(out.clip_frac_low, 0.5));
    // unset: the reference is clipped like a policy row
    let out = case(1.25, 1.0, &LossConfig::default());
    assert_eq!(out.coefficients[0], out.coefficients[1]);
    assert_eq!(LossConfig::default().clip(true), (0.2, 0.28));
}

#[test]
fn the_behaviour_cloning_coefficient_is_off_by_default_and_follows_its_schedule() {
    assert_eq!(StepConfig::default().bc.coef(1), 0.0);
    let bc = BcConfig { enabled: true, peak: 0.3, warmup_steps: 3, ..BcConfig::default() };
    assert!(close(bc.coef(1), 0.1) && close(bc.coef(2), 0.2) && bc.coef(3) == 0.3 && bc.coef(50) == 0.3);
}

/// Rewards fixed by row: policy rows 1.8, 0.2, −0.4, −1.5 in order, the reference 1.9.
struct FixedRewards;

impl Rewarder for FixedRewards {
    fn score(&self, candidates: &[Candidate]) -> anyhow::Result<Vec<Breakdown>> {
        let mut policy = [1.8, 0.2, -0.4, -1.5].into_iter();
        Ok(candidates
            .iter()
            .map(|c| {
                let mut b = Breakdown::rules(c, Weights::training());
                let reference = c.response.is_some_and(|r| r.is_reference);
                b.reward = if reference { 1.9 } else { policy.next().unwrap() };
                b
            })
            .collect())
    }
}

fn tiny() -> Workers {
    Workers::open("tiny", &[Device::Cpu], DType::F32, all_trainable(), false).unwrap()
}

const PROMPT: &str = "Write a story about a fox. The story should be 300 words long.";

#[test]
fn the_score_clip_bounds_scores_before_the_group_statistics() {
    let cfg = StepConfig {
        group_size: 5,
        score_clip: 1.0,
        sampling: common::plain_sampling(8),
        ..Default::default()
    };
    let batch = [TrainPrompt { prompt: PROMPT, story: Some("The fox ran home."), reasoning: None }];
    let (_, rows) =
        Trainer::new(cfg, 5).step(&tiny(), &batch, &FixedRewards, &AtomicBool::new(false)).unwrap();
    // clipped: 1.0, 0.2, −0.4, −1.0 and the reference 1.0; mean −0.05; sample variance
    // (1.05² + 0.25² + 0.35² + 0.95²) / 3 = 2.19 / 3
    let std = (2.19f64 / 3.0).sqrt();
    let want = [1.0, 0.2, -0.4, -1.0, 1.0].map(|s| (s + 0.05) / (std + 1e-6));
    let got: Vec<(f64, f64)> = rows.iter().map(|r| (r.reward, r.advantage)).collect();
    for ((score, adv), (want_score, want_adv)) in got.iter().zip([1.0, 0.2, -0.4, -1.0, 1.0].iter().zip(want))
    {
        assert!(close(*score, *want_score) && close(*adv, want_adv), "{got:?}");
    }
    assert!(
        rows[4].rollout.is_reference && rows[4].breakdown.reward == 1.9,
        "the reward is kept; the score is clipped"
    );
    // off (the default): the scores are the rewards
    let cfg = StepConfig { group_size: 5, sampling: common::plain_sampling(8), ..Default::default() };
    let (_, rows) =
        Trainer::new(cfg, 5).step(&tiny(), &batch, &FixedRewards, &AtomicBool::new(false)).unwrap();
    assert_eq!(rows.iter().map(|r| r.reward).collect::<Vec<_>>(), [1.8, 0.2, -0.4, -1.5, 1.9]);
}

#[test]
fn behaviour_cloning_alone_builds_reference_rows_that_take_no_part_in_grpo() {
    let bc = BcConfig { enabled: true, peak: 0.2, ..BcConfig::default() };
    let cfg = StepConfig {
        group_size: 3,
        hri: false,
        bc,
        sampling: common::plain_sampling(8),
        ..Default::default()
    };
    let batch = [TrainPrompt { prompt: PROMPT, story: Some("The fox ran home."), reasoning: None }; 2];
    let (stats, rows) =
        Trainer::new(cfg, 5).step(&tiny(), &batch, &WordsReward(8.0), &AtomicBool::new(false)).unwrap();
    let refs: Vec<_> = rows.iter().filter(|r| r.rollout.is_reference).collect();
    assert_eq!((rows.len(), refs.len()), (6, 2), "2 policy rows + the reference per group");
    assert!(refs.iter().all(|r| r.advantage == 0.0));
    assert_eq!((stats.hri_weight, stats.bc_coef), (0.0, 0.2));
    assert!(stats.bc_nll.is_some_and(|n| n > 0.0), "{:?}", stats.bc_nll);
    // neither HRI nor BC: no reference rows, no BC statistics
    let cfg =
        StepConfig { group_size: 3, hri: false, sampling: common::plain_sampling(8), ..Default::default() };
    let (stats, rows) =
        Trainer::new(cfg, 5).step(&tiny(), &batch, &WordsReward(8.0), &AtomicBool::new(false)).unwrap();
    assert!(rows.iter().all(|r| !r.rollout.is_reference) && stats.bc_nll.is_none());
}

fn offline_client() -> Arc<JudgeClient> {
    Arc::new(
        JudgeClient::new(JudgeSpec::Offline, Rubric::builtin().unwrap(), JudgeSettings::default()).unwrap(),
    )
}

fn candidate(story: &str, is_reference: bool) -> Candidate {
    let response = Response { tokens: 400, thinking_tokens: 50, ended: true, is_reference };
    Candidate { prompt: PROMPT.into(), story: story.into(), response: Some(response), reference: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_best_leaves_the_reference_unjudged_at_the_clip_maximum() {
    let story = "The fox ran home over the hill and slept by the fire. ".repeat(20);
    let cands = [candidate(&story, false), candidate("A fox.", false), candidate(&story, true)];
    for mode in [ScoreMode::Composite, ScoreMode::Release] {
        let rules = RowRules {
            reference_best: true,
            scoring: Scoring { mode, ..Scoring::default() },
            ..RowRules::composite(Weights::training())
        };
        let out = score_rows(&offline_client(), &cands, &rules).await;
        let r = &out[2];
        assert_eq!((r.reward, r.composite, r.score), (2.0, 2.0, Some(2.0)), "{mode:?}");
        assert!(r.reference_best && r.judgement.is_none() && r.judge_attempts == 0);
        assert_eq!(r.story_quality_source, SqSource::NotJudged);
        assert!(out[..2].iter().all(|b| b.story_quality_source == SqSource::Judge && !b.reference_best));
    }
    // off (the default): the reference is judged like any row
    let out = score_rows(&offline_client(), &cands, &RowRules::composite(Weights::training())).await;
    assert_eq!(out[2].story_quality_source, SqSource::Judge);
    assert!(out[2].reward < 2.0);
}

const COHERENCE: &str = "negative_coherence_continuity_internal_consistency_pov_confusion";
const NONSENSE: &str = "negative_overwrought_nonsensical_language";

fn polaris_rubric() -> Rubric {
    let dir = common::shared().join("data/polaris");
    Rubric::from_prompt_and_schema(
        &dir.join("story_quality_seq.txt"),
        &dir.join("story_quality_seq.schema.json"),
    )
    .unwrap()
}

/// A judged row: coherence and nonsense scores as given, overall 40 (SQ 0.4).
fn judged(words: usize, coherence: i64, nonsense: i64, is_reference: bool) -> (Breakdown, Candidate) {
    let story = (0..words).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    let c = candidate(&story, is_reference);
    let mut b = Breakdown::rules(&c, Weights::training());
    let dim = |key: &str, score, max| DimensionScore {
        key: key.into(),
        sign: Sign::Negative,
        score,
        max,
        justification: String::new(),
    };
    let j = Judgement {
        dimensions: vec![dim(COHERENCE, coherence, 20), dim(NONSENSE, nonsense, 20)],
        positive_total: 60,
        negative_total: coherence + nonsense,
        bonus: 0,
        penalty: 0,
        bonus_applied: 0,
        penalty_applied: 0,
        bonus_evidence: vec![],
        penalty_evidence: vec![],
        overall: 40,
        reported_overall: Some(40),
        story_quality: 0.4,
        totals: polaris::reward::totals::TotalsReading::Parts,
        reported: None,
    };
    b.story_quality = j.story_quality;
    b.overall = Some(j.overall);
    b.judgement = Some(j);
    (b, c)
}

#[test]
fn disqualification_gates_floor_story_quality_by_hand() {
    let rubric = polaris_rubric();
    let gates = DisqualifyGates { enabled: true, ..Default::default() }.resolve(&rubric).unwrap().unwrap();
    // the floor: −(151 negative + 8 penalty) = −159, SQ −1.59
    assert_eq!((gates.coherence.as_str(), gates.nonsense.as_str(), gates.floor), (COHERENCE, NONSENSE, -159));
    // 300 words requested: the word gate is under 0.4 · 300 = 120 whitespace words
    let rows = [
        judged(200, 7, 0, false),  // coherence ≥ 7
        judged(200, 6, 8, false),  // nonsense ≥ 8
        judged(119, 6, 7, false),  // 119 < 120 words
        judged(120, 6, 7, false),  // none
        judged(200, 20, 20, true), // the reference: exempt
    ];
    let (mut batch, cands): (Vec<Breakdown>, Vec<Candidate>) = rows.into_iter().unzip();
    // a failed judgement: no gates; it takes the batch mean after them
    let failed = candidate("The fox ran home.", false);
    let mut b = Breakdown::rules(&failed, Weights::training());
    b.judge_failure = Some("503".into());
    batch.push(b);
    let cands: Vec<Candidate> = cands.into_iter().chain([failed]).collect();
    gates.apply(&mut batch, &cands);
    apply_batch_mean(&mut batch);
    let gate = |b: &Breakdown| b.disqualified.as_ref().map(|d| d.gates.clone()).unwrap_or_default();
    assert_eq!(gate(&batch[0]), [Gate::Coherence]);
    assert_eq!(gate(&batch[1]), [Gate::Nonsense]);
    assert_eq!(gate(&batch[2]), [Gate::Words]);
    assert!(gate(&batch[3]).is_empty() && gate(&batch[4]).is_empty() && gate(&batch[5]).is_empty());
    for b in &batch[..3] {
        assert!(close(b.story_quality, -1.59) && b.overall == Some(-159));
        assert_eq!(b.disqualified.as_ref().unwrap().overall_before, 40);
    }
    assert!(close(batch[3].story_quality, 0.4) && close(batch[4].story_quality, 0.4));
    // row 0: 200 distinct words on length, nothing else: the reward is SQ, −1.59
    assert!(close(batch[0].reward, -1.59), "{}", batch[0].reward);
    // the failed row: the mean of −1.59 × 3, 0.4 × 2
    assert!(close(batch[5].story_quality, (3.0 * -1.59 + 0.8) / 5.0), "{}", batch[5].story_quality);
    // the reference is gated too when not exempt
    let gates = DisqualifyGates { enabled: true, exempt_reference: false, ..Default::default() }
        .resolve(&rubric)
        .unwrap()
        .unwrap();
    let (b, c) = judged(200, 20, 20, true);
    assert_eq!(gates.check(&b, &c), [Gate::Coherence, Gate::Nonsense]);
}

#[test]
fn disqualification_gates_resolve_against_the_rubric() {
    assert_eq!(DisqualifyGates::default().resolve(&polaris_rubric()).unwrap(), None, "off by default");
    let on = DisqualifyGates { enabled: true, ..Default::default() };
    let builtin = on.resolve(&Rubric::builtin().unwrap()).unwrap().unwrap();
    assert_eq!(
        (builtin.coherence.as_str(), builtin.nonsense.as_str()),
        ("negative_broken_logic_and_continuity", "negative_purple_or_senseless_prose")
    );
    let bad = DisqualifyGates { coherence_dimension: "negative_nope".into(), ..on };
    let e = bad.resolve(&polaris_rubric()).unwrap_err().to_string();
    assert!(e.contains("reward.disqualify.coherence_dimension") && e.contains(COHERENCE), "{e}");
}
