//! The playground's share of the update step: keys change the settings and start or stop
//! jobs; the workers' messages fill the panes. Returns a line for the status bar, if any.

use super::msg::Msg;
use super::save::save;
use super::state::{Field, Pane, PlaygroundState, Status};
use super::worker::{Job, Workers};
use crate::generate::{story_prompt, Finish};
use crate::tui::widgets::opt_num;

pub fn update(s: &mut PlaygroundState, w: &Workers, msg: Msg) -> Option<String> {
    match msg {
        Msg::StartEditing => s.editing = true,
        Msg::StopEditing => s.editing = false,
        Msg::Edit(key) => {
            s.editor.input(key);
        }
        Msg::Field { down } => {
            let n = Field::ALL.len();
            s.field = (s.field + if down { 1 } else { n - 1 }) % n;
        }
        Msg::Adjust { up } => adjust(s, up),
        Msg::TogglePanes => {
            s.two = !s.two;
            s.focus = s.focus.min(s.shown() - 1);
        }
        Msg::SwitchPane => s.focus = (s.focus + 1) % s.shown(),
        Msg::CycleModel => {
            let current = s.choices.get(s.panes[s.focus].choice).cloned();
            // checkpoints appear as the run writes them
            s.choices = w.choices();
            let at = current.and_then(|c| s.choices.iter().position(|x| *x == c)).unwrap_or(0);
            s.panes[s.focus].choice = (at + 1) % s.choices.len();
        }
        Msg::Scroll { down, lines } => {
            let p = &mut s.panes[s.focus];
            p.scroll = if down { p.scroll.saturating_add(lines) } else { p.scroll.saturating_sub(lines) };
        }
        Msg::Generate => return generate(s, w),
        Msg::Stop => {
            let mut any = false;
            for i in 0..s.shown() {
                if matches!(s.panes[i].status, Status::Loading | Status::Generating) {
                    w.stop(i);
                    any = true;
                }
            }
            return Some(
                if any { "stopping: the story so far is kept" } else { "nothing is generating" }.into(),
            );
        }
        Msg::Judge => {
            let p = &mut s.panes[s.focus];
            let Some(record) = p.record.clone().filter(|_| !p.status.busy()) else {
                return Some("nothing to judge yet: generate a story first (g)".into());
            };
            return match w.judge(s.focus, p.generation, record, p.request.clone()) {
                Ok(()) => {
                    p.status = Status::Judging;
                    None
                }
                Err(e) => Some(format!("{e:#}")),
            };
        }
        Msg::Save => {
            return Some(match save(&w.run_dir, s, s.focus, &s.panes[s.focus]) {
                Ok(path) => format!("saved {}", path.display()),
                Err(e) => format!("{e:#}"),
            })
        }
        Msg::Loaded { pane, generation, label, prompt } => {
            let p = current(s, pane, generation)?;
            p.loaded = Some(label);
            p.prompt = prompt;
            p.status = Status::Generating;
        }
        Msg::Piece { pane, generation, text } => current(s, pane, generation)?.push(&text),
        Msg::Finished { pane, generation, record } => {
            let target = s.target_words;
            let p = current(s, pane, generation)?;
            let r = record.0;
            p.words = r.words;
            p.tokens = r.token_ids.len();
            p.status = if r.finish == Finish::Cancelled { Status::Stopped } else { Status::Finished };
            p.record = Some(r);
            let side = ["left", "right"][pane];
            return Some(format!(
                "{side}: {} words of {target} (ratio {}), {} tokens",
                p.words,
                opt_num(p.ratio(target)),
                p.tokens
            ));
        }
        Msg::Judged { pane, generation, breakdown } => {
            let p = current(s, pane, generation)?;
            p.breakdown = Some(breakdown.0);
            p.status = Status::Judged;
        }
        Msg::Failed { pane, generation, error } => {
            let p = current(s, pane, generation)?;
            // a failed judgement keeps the story; a failed generation has nothing to keep
            p.status = Status::Failed(error.clone());
            return Some(error);
        }
    }
    None
}

/// The pane a worker message is for, if it still shows that generation.
fn current(s: &mut PlaygroundState, pane: usize, generation: u64) -> Option<&mut Pane> {
    s.panes.get_mut(pane).filter(|p| p.generation == generation)
}

fn generate(s: &mut PlaygroundState, w: &Workers) -> Option<String> {
    let instruction = s.instruction();
    if instruction.is_empty() {
        return Some("write a prompt first: e edits it".into());
    }
    let request = story_prompt(&instruction, s.target_words);
    for i in 0..s.shown() {
        let p = &mut s.panes[i];
        if p.status.busy() {
            continue;
        }
        let generation = p.generation + 1;
        let choice = s.choices.get(p.choice).cloned().unwrap_or(super::state::Choice::Latest);
        let mut fresh = Pane::new(p.choice);
        fresh.generation = generation;
        fresh.request = request.clone();
        fresh.status = Status::Loading;
        *p = fresh;
        let job = Job {
            pane: i,
            generation,
            choice,
            text: request.clone(),
            thinking: s.thinking,
            target_words: s.target_words,
            params: s.params.clone(),
        };
        if let Err(e) = w.generate(job) {
            s.panes[i].status = Status::Failed(format!("{e:#}"));
            return Some(format!("{e:#}"));
        }
    }
    None
}

fn adjust(s: &mut PlaygroundState, up: bool) {
    let p = &mut s.params;
    let sign = if up { 1.0 } else { -1.0 };
    match Field::ALL[s.field] {
        Field::Words => {
            s.target_words =
                if up { s.target_words + 100 } else { s.target_words.saturating_sub(100).max(100) }
        }
        Field::Thinking => s.thinking = !s.thinking,
        // rounded so repeated steps stay on the tenths / twentieths
        Field::Temperature => {
            p.temperature = ((p.temperature + 0.1 * sign) * 10.0).round().clamp(0.0, 20.0) / 10.0
        }
        Field::TopP => p.top_p = ((p.top_p + 0.05 * sign) * 20.0).round().clamp(1.0, 20.0) / 20.0,
        Field::TopK => p.top_k = if up { p.top_k + 5 } else { p.top_k.saturating_sub(5) },
        Field::MaxTokens => {
            p.max_new_tokens =
                if up { (p.max_new_tokens * 2).min(32768) } else { (p.max_new_tokens / 2).max(16) }
        }
        Field::Seed => p.seed = if up { p.seed + 1 } else { p.seed.saturating_sub(1) },
    }
}
