//! `polaris-tui annotate`: blinded side-by-side judging of two systems' stories, or of every
//! two of several systems (`--gen` repeated; one study per pair, `annotate/pairs.rs`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use crate::annotate::input::{describe_unmatched, pair_generations};
use crate::annotate::pairs::{all_pairs, pair_folder, pair_studies};
use crate::annotate::screen::AnnotateScreen;
use crate::annotate::study::{check_annotator, Study};
use crate::annotate::{terminal, Session};
use crate::generate::file::{read_generations, Generation};

#[derive(Args, Debug)]
pub struct AnnotateArgs {
    /// System A's generation file: JSONL with uid, prompt, system, story (thinking and
    /// requested_words optional). Needed only to create the study.
    #[arg(long, requires = "b")]
    pub a: Option<PathBuf>,
    /// System B's generation file, matched to A's by uid.
    #[arg(long, requires = "a")]
    pub b: Option<PathBuf>,
    /// A further system's generation file (repeat it; with --a/--b or alone, at least two in
    /// all): every two systems are compared, each pair a study in OUT/<A>-vs-<B>/.
    #[arg(long = "gen", value_name = "FILE")]
    pub generations: Vec<PathBuf>,
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
    let files: Vec<PathBuf> = args.a.iter().chain(&args.b).chain(&args.generations).cloned().collect();
    if !args.generations.is_empty() || (!Study::exists(&args.out) && !pair_studies(&args.out)?.is_empty()) {
        return run_pairs(&args, &files);
    }
    match (&args.a, &args.b) {
        (Some(a), Some(b)) => {
            create_pair(&args, (a, &read_generations(a)?), (b, &read_generations(b)?), &args.out)?;
        }
        _ if !Study::exists(&args.out) => bail!(
            "{} holds no study yet; create it with --a SYSTEM_A.jsonl --b SYSTEM_B.jsonl",
            args.out.display()
        ),
        _ => {}
    }
    annotate_studies(&args, std::slice::from_ref(&args.out))
}

/// Matches two files into the study in `out` (created, or checked against the one there).
fn create_pair(
    args: &AnnotateArgs,
    (a, gens_a): (&Path, &[Generation]),
    (b, gens_b): (&Path, &[Generation]),
    out: &Path,
) -> Result<()> {
    let pairing = pair_generations(a, gens_a, b, gens_b)?;
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
    Study::open_or_create(out, Study::new(pairing.items, sources)?)?;
    Ok(())
}

/// Several systems: a study per pair (made from `files` when given), annotated one pair after
/// another; each pair's items are blinded and shuffled as a two-system study's are.
fn run_pairs(args: &AnnotateArgs, files: &[PathBuf]) -> Result<()> {
    if !files.is_empty() {
        if files.len() < 2 {
            bail!("--gen: give at least two generation files in all (with --a/--b or --gen repeated)");
        }
        let gens = files.iter().map(|f| read_generations(f)).collect::<Result<Vec<_>>>()?;
        for (i, j) in all_pairs(files.len()) {
            let folder = pair_folder(&gens[i][0].system, &gens[j][0].system);
            create_pair(args, (&files[i], &gens[i]), (&files[j], &gens[j]), &args.out.join(folder))?;
        }
    }
    let studies = pair_studies(&args.out)?;
    annotate_studies(args, &studies)
}

/// Opens the annotator's session in each study and, unless `--prepare`, runs the screen on
/// each in turn until one is quit.
fn annotate_studies(args: &AnnotateArgs, studies: &[PathBuf]) -> Result<()> {
    let mut sessions = Vec::new();
    for dir in studies {
        sessions.push(open_session(args, dir)?);
    }
    if args.prepare {
        return Ok(());
    }
    for session in sessions {
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
        if ledger.done() < ledger.total() {
            // quit before the end: the next pairs wait for the next session
            break;
        }
    }
    Ok(())
}

fn open_session(args: &AnnotateArgs, dir: &Path) -> Result<Session> {
    let session = Session::open(dir, &args.annotator, args.seed)?;
    let (done, total) = (session.ledger.done(), session.ledger.total());
    eprintln!(
        "{}: {done} of {total} judged so far, saved in {}",
        args.annotator,
        session.judgments_path().display()
    );
    Ok(session)
}
