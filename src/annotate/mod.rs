//! Blinded side-by-side human evaluation: generation files matched by prompt uid into a
//! study folder, a per-annotator blinding, an append-only judgment store that survives a
//! kill, and the screen an annotator works in.

pub mod blinding;
pub mod input;
pub mod ledger;
pub mod pairs;
pub mod record;
pub mod rollouts;
pub mod screen;
pub mod session;
pub mod store;
pub mod study;
pub mod terminal;

pub use input::{Item, Story};
pub use ledger::{Judged, Ledger};
pub use record::{Record, Verdict};
pub use session::Session;
pub use study::Study;
