//! A headless run on the terminal: a progress bar over the run's steps, with one line per
//! step (and per warm-start step) printed above it. Lines always print; the bar only draws
//! on a terminal.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::broadcast;

use crate::run::stats::StepStats;
use crate::run::stats::ValStats;
use crate::run::{Event, EventKind};

/// Prints the run's events until it finishes (or its log closes); with a progress bar below
/// them when `bar` (a detached run's log gets the lines alone).
pub fn follow(mut events: broadcast::Receiver<Event>, steps: usize, bar: bool) {
    let bar = if bar { ProgressBar::new(steps as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} step {pos}/{len} [{bar:30}] {elapsed_precise} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    loop {
        let ev = match events.blocking_recv() {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                bar.suspend(|| eprintln!("({n} events not shown: the printer fell behind)"));
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        match ev.kind {
            EventKind::Started { resumed_from_step: Some(s), .. } => {
                bar.set_position(s as u64);
                bar.suspend(|| eprintln!("resumed at step {s}"));
            }
            EventKind::Sft(s) => {
                bar.set_message(format!("warm start {}/{}", s.step, s.steps));
                bar.suspend(|| {
                    eprintln!(
                        "sft  {:>4}/{}  epoch {}  nll {:.3}  grad {:.3}  {} tokens  {:.1}s",
                        s.step, s.steps, s.epoch, s.loss, s.grad_norm, s.tokens, s.seconds
                    )
                });
            }
            EventKind::Step(s) => {
                bar.set_position(s.step as u64);
                bar.set_message(format!("reward {:+.3}", s.policy_reward_mean));
                bar.suspend(|| eprintln!("{}", step_line(&s)));
            }
            EventKind::Val(v) => bar.suspend(|| eprintln!("{}", val_line(&v))),
            EventKind::Checkpoint { step, path } => {
                bar.suspend(|| eprintln!("checkpoint at step {step}: {path}"))
            }
            EventKind::Paused { step } => bar.suspend(|| eprintln!("paused after step {step}")),
            EventKind::Resumed { step } => bar.suspend(|| eprintln!("resumed after step {step}")),
            EventKind::Message { level, text } => bar.suspend(|| eprintln!("{level:?}: {text}")),
            EventKind::Alert(a) => {
                let word = if a.raised { "ALERT" } else { "alert cleared" };
                bar.suspend(|| eprintln!("{word}: {}", a.line()))
            }
            EventKind::Finished { step, reason } => {
                bar.finish_and_clear();
                eprintln!("run {reason} at step {step}");
                break;
            }
            EventKind::Started { .. } => {}
        }
    }
}

/// " (N cut, T tokens)" when references were cut to the response budget this step, and
/// "K capped" when K references' advantages were above the cap.
fn references_cut(s: &StepStats) -> String {
    let mut notes = Vec::new();
    if s.reference_rows_cut > 0 {
        notes.push(format!("{} cut, {} tokens", s.reference_rows_cut, s.reference_tokens_cut));
    }
    if s.reference_advantage_capped > 0 {
        notes.push(format!("{} capped", s.reference_advantage_capped));
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    }
}

/// One step as a line.
pub fn step_line(s: &StepStats) -> String {
    format!(
        "step {:>4}  reward {:+.3} ± {:.3}  ref {}  loss {:+.4}  kl {:.4}  grad {:.3}  words {:.0}  gen {:.1}s judge {:.1}s train {:.1}s",
        s.step,
        s.policy_reward_mean,
        s.policy_reward_std,
        s.reference_reward_mean.map_or("-".into(), |r| format!("{r:+.3}{}", references_cut(s))),
        s.loss,
        s.kl,
        s.grad_norm,
        s.words_mean,
        s.seconds_generate,
        s.seconds_judge,
        s.seconds_train
    )
}

/// One validation pass as a line.
pub fn val_line(v: &ValStats) -> String {
    let failures = match v.judge_failures {
        0 => String::new(),
        n => format!("  judge failures {n}"),
    };
    format!(
        "val  {:>4}  reward {:+.3} ± {:.3}  SQ {:+.3}  rep {:.3}  len {:.3}  ratio {}  words {:.0}  ({} prompts, gen {:.1}s judge {:.1}s){failures}",
        v.step,
        v.reward_mean,
        v.reward_std,
        v.story_quality_mean,
        v.self_repetition_mean,
        v.length_penalty_mean,
        v.length_ratio_mean.map_or("-".into(), |r| format!("{r:.2}")),
        v.words_mean,
        v.prompts,
        v.seconds_generate,
        v.seconds_judge,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_line_counts_cut_references() {
        let s = StepStats { reference_reward_mean: Some(0.5), ..Default::default() };
        assert!(step_line(&s).contains("ref +0.500  loss"), "{}", step_line(&s));
        let cut = StepStats { reference_rows_cut: 2, reference_tokens_cut: 900, ..s };
        assert!(step_line(&cut).contains("ref +0.500 (2 cut, 900 tokens)  loss"), "{}", step_line(&cut));
        let capped = StepStats { reference_advantage_capped: 3, ..cut };
        assert!(step_line(&capped).contains("(2 cut, 900 tokens; 3 capped)  loss"), "{}", step_line(&capped));
    }
}
