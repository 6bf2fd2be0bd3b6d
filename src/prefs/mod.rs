//! Preference pairs: (prompt, chosen story, rejected story) with where the preference came
//! from. `prefs build` gathers them from what the workbench already holds (annotate
//! studies, Elo judgements, a run's groups), `prefs curate` has agents write and check
//! them, and `rm train` learns a reward model from them.

pub mod build;
pub mod curate;
pub mod pair;

pub use pair::{read_pairs, write_pairs, Pair, Split};
