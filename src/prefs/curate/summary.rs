//! The summary of a curation folder: prompts, pairs kept, prompts rejected by each agent,
//! prompts left open (an agent failed, or not reached yet), and each agent's calls, failures,
//! tokens and cost, over every record of the folder (earlier runs included).

use std::collections::HashMap;

use serde::Serialize;

use super::store::{AgentRecord, Decision, Role, Step};
use crate::reward::judge::http::Usage;

#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentLine {
    pub role: String,
    pub spec: String,
    /// Records of this agent's steps (a judge step is two requests, both orders).
    pub steps: usize,
    /// Steps that gave no usable answer.
    pub failed: usize,
    /// Prompts this agent's disagreement rejected (judge, reflect).
    pub rejected: usize,
    /// Open prompts whose latest step was this agent failing.
    pub open_failed: usize,
    pub cached: usize,
    pub usage: Usage,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Prompts in the dataset.
    pub prompts: usize,
    pub kept: usize,
    pub rejected: usize,
    /// Prompts without a decision: an agent failed, or they were not reached.
    pub open: usize,
    pub agents: Vec<AgentLine>,
    pub usage: Usage,
}

/// The summary over `records`, for the dataset's `uids`; `specs` names each role's agent.
pub fn summarise(records: &[AgentRecord], uids: &[String], specs: &[(Role, String)]) -> Summary {
    let mut lines: Vec<AgentLine> = specs
        .iter()
        .map(|(r, s)| AgentLine { role: r.name().into(), spec: s.clone(), ..AgentLine::default() })
        .collect();
    let at = |r: Role| specs.iter().position(|(x, _)| *x == r).expect("every role has a line");
    let mut decided: HashMap<&str, &Decision> = HashMap::new();
    let mut last_failed: HashMap<&str, Option<Role>> = HashMap::new();
    let mut usage = Usage::default();
    for rec in records {
        if let Some(role) = rec.role() {
            let line = &mut lines[at(role)];
            line.steps += 1;
            line.failed += rec.failed() as usize;
            line.cached += rec.cached as usize;
            line.usage.add(&rec.usage);
            usage.add(&rec.usage);
            last_failed.insert(&rec.uid, rec.failed().then_some(role));
        }
        if let Step::Decided { decision } = &rec.step {
            decided.insert(&rec.uid, decision);
        }
    }
    let mut s = Summary { prompts: uids.len(), usage, ..Summary::default() };
    for uid in uids {
        match decided.get(uid.as_str()) {
            Some(Decision::Kept) => s.kept += 1,
            Some(Decision::Rejected { by, .. }) => {
                s.rejected += 1;
                lines[at(*by)].rejected += 1;
            }
            None => {
                s.open += 1;
                if let Some(Some(role)) = last_failed.get(uid.as_str()) {
                    lines[at(*role)].open_failed += 1;
                }
            }
        }
    }
    s.agents = lines;
    s
}

/// The table `prefs curate` prints.
pub fn table(s: &Summary) -> String {
    let mut out = format!(
        "prompts {}: kept {} ({}), rejected {}, open {}\n\n",
        s.prompts,
        s.kept,
        share(s.kept, s.prompts),
        s.rejected,
        s.open
    );
    let spec_w = s.agents.iter().map(|a| a.spec.len()).max().unwrap_or(4).max(4);
    out.push_str(&format!(
        "{:<9} {:<spec_w$} {:>6} {:>7} {:>9} {:>12} {:>11} {:>11} {:>10}\n",
        "agent", "spec", "steps", "failed", "rejected", "open: failed", "tokens in", "tokens out", "cost $"
    ));
    for a in &s.agents {
        out.push_str(&format!(
            "{:<9} {:<spec_w$} {:>6} {:>7} {:>9} {:>12} {:>11} {:>11} {:>10.4}\n",
            a.role,
            a.spec,
            a.steps,
            a.failed,
            a.rejected,
            a.open_failed,
            a.usage.prompt_tokens,
            a.usage.completion_tokens,
            a.usage.cost
        ));
    }
    out.push_str(&format!(
        "{:<9} {:<spec_w$} {:>6} {:>7} {:>9} {:>12} {:>11} {:>11} {:>10.4}\n",
        "total",
        "",
        "",
        "",
        s.rejected,
        s.agents.iter().map(|a| a.open_failed).sum::<usize>(),
        s.usage.prompt_tokens,
        s.usage.completion_tokens,
        s.usage.cost
    ));
    out
}

fn share(n: usize, of: usize) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / of as f64)
    }
}
