//! `polaris-tui annotate`: blinded side-by-side judging of two systems' stories.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::annotate::input::{describe_unmatched, pair_generations, read_generations};
use crate::annotate::screen::AnnotateScreen;
use crate::annotate::study::{check_annotator, Study};
use crate::annotate::{terminal, Session};

#[derive(Args, Debug)]
pub struct AnnotateArgs {
    /// System A's generation file: JSONL with prompt_uid, prompt, system, story (thinking and
    /// requested_words optional). Needed only to create the study.
    #[arg(long, requires = "b")]
    pub a: Option<PathBuf>,
    /// System B's generation file, matched to A's by prompt_uid.
    #[arg(long, requires = "a")]
    pub b: Option<PathBuf>,
    /// Who is judging; names the judgments file (judgments-NAME.jsonl).
    #[arg(long)]
    pub annotator: String,
    /// The study folder, shared by all annotators.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of this annotator's item order and sides [default: derived from the name].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Go on with the prompts both files hold when some are in one only (they are listed).
    #[arg(long)]
    pub skip_unmatched: bool,
    /// Write the study and this annotator's blinding, then exit without the screen.
    #[arg(long)]
    pub prepare: bool,
}

pub fn run(args: AnnotateArgs) -> Result<()> {
    check_annotator(&args.annotator)?;
    match (&args.a, &args.b) {
        (Some(a), Some(b)) => {
            let pairing = pair_generations(a, &read_generations(a)?, b, &read_generations(b)?)?;
            if !pairing.unmatched.is_empty() {
                let list = describe_unmatched(&pairing.unmatched);
                if !args.skip_unmatched {
                    bail!(
                        "{} prompt uid(s) are in one file only:\n{list}\nfix the files, or pass --skip-unmatched to judge the {} prompts both hold",
                        pairing.unmatched.len(),
                        pairing.items.len()
                    );
                }
                eprintln!("skipping {} prompt uid(s) in one file only:\n{list}", pairing.unmatched.len());
            }
            let sources = vec![a.display().to_string(), b.display().to_string()];
            Study::open_or_create(&args.out, Study::new(pairing.items, sources)?)?;
        }
        _ if !Study::exists(&args.out) => bail!(
            "{} holds no study yet; create it with --a SYSTEM_A.jsonl --b SYSTEM_B.jsonl",
            args.out.display()
        ),
        _ => {}
    }
    let session = Session::open(&args.out, &args.annotator, args.seed)?;
    let (done, total) = (session.ledger.done(), session.ledger.total());
    eprintln!(
        "{}: {done} of {total} judged so far, saved in {}",
        args.annotator,
        session.judgments_path().display()
    );
    if args.prepare {
        return Ok(());
    }
    let mut screen = AnnotateScreen::new(session);
    terminal::run(&mut screen)?;
    let ledger = &screen.session.ledger;
    eprintln!(
        "{}: {} of {} judged, saved in {}",
        args.annotator,
        ledger.done(),
        ledger.total(),
        screen.session.judgments_path().display()
    );
    Ok(())
}
