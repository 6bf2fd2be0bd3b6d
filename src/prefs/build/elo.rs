//! Pairs from `eval elo` judgements (`judgements.jsonl`): a pair is kept only when both
//! orders gave a verdict and agree on the winner (`consistent`, preference ≠ 0); its weight is
//! |preference| (1 when both orders were decisive). The judgements name stories by their
//! `story_id`; the texts come from the generation files the Elo run judged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::durable::jsonl::{jsonl_lines, Problems};
use crate::eval::elo::store::{story_id, JudgementRecord, JUDGEMENTS};
use crate::generate::file::read_generations;
use crate::prefs::{Pair, Split};

pub const SOURCE: &str = "elo";

/// What an Elo folder gave: pairs, and the judgements passed over (incomplete or
/// inconsistent orders, or no preference).
pub struct EloPairs {
    pub pairs: Vec<Pair>,
    pub passed_over: usize,
}

pub fn pairs(dir: &Path, gens: &[PathBuf]) -> Result<EloPairs> {
    let path = dir.join(JUDGEMENTS);
    if !path.exists() {
        bail!("{}: no {JUDGEMENTS}; is {} an `eval elo --out` folder?", path.display(), dir.display());
    }
    if gens.is_empty() {
        bail!("--elo {} needs the generation files it judged (--gens FILE ...): the judgements hold story ids, not texts", dir.display());
    }
    // story_id -> (prompt, story)
    let mut stories: HashMap<String, (String, String)> = HashMap::new();
    for g in gens {
        for gen in read_generations(g)? {
            stories.insert(story_id(&gen.story), (gen.prompt, gen.story));
        }
    }
    let lines = jsonl_lines(&path)?;
    let mut problems = Problems::default();
    let (mut out, mut passed_over) = (Vec::new(), 0);
    for (n, parsed) in &lines {
        let at = format!("{}:{n}", path.display());
        let Some(obj) = problems.object(&at, parsed) else { continue };
        let r: JudgementRecord = match serde_json::from_value(obj.clone().into()) {
            Ok(r) => r,
            Err(e) => {
                problems.record(&at, vec![format!("not a judgement record ({e})")]);
                continue;
            }
        };
        if !(r.complete() && r.result.consistent && r.result.preference != 0.0) {
            passed_over += 1;
            continue;
        }
        let (Some(a), Some(b)) = (stories.get(&r.stories[0]), stories.get(&r.stories[1])) else {
            problems.record(
                &at,
                vec![format!(
                    "story {} or {} is in none of the --gens files; give the generation files this Elo run judged",
                    r.stories[0], r.stories[1]
                )],
            );
            continue;
        };
        let (chosen, rejected) = if r.result.preference > 0.0 { (a, b) } else { (b, a) };
        out.push(Pair {
            uid: r.prompt_uid.clone(),
            prompt: a.0.clone(),
            chosen: chosen.1.clone(),
            rejected: rejected.1.clone(),
            source: SOURCE.into(),
            weight: r.result.preference.abs().min(1.0),
            split: Split::Train,
        });
    }
    problems.check(&path, lines.len())?;
    Ok(EloPairs { pairs: out, passed_over })
}
