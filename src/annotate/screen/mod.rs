//! The annotation screen: its state, a pure draw function and the key handling. The
//! workbench embeds it as a tab; `polaris-tui annotate` runs it on its own.

mod draw;
mod keys;
mod state;

pub use draw::draw;
pub use keys::handle_key;
pub use state::{color_enabled, AnnotateScreen, Outcome, Pane, Status};
