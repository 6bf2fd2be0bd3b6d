//! The registry: the workbench's tabs in their order (the number keys and the tab bar follow
//! it). A new tab is one line here.

use super::state::TabId;
use super::tab::{HelpSection, Tab};
use super::{annotate, dashboard, eval, gpus, groups, inspector, playground};

pub static TABS: [Tab; 7] =
    [dashboard::TAB, groups::TAB, inspector::TAB, gpus::TAB, playground::TAB, annotate::TAB, eval::TAB];

/// The tab with this identity (the first if none has it: an id comes from a `TAB`).
pub fn get(id: TabId) -> &'static Tab {
    &TABS[index(id)]
}

pub fn index(id: TabId) -> usize {
    TABS.iter().position(|t| t.id == id).unwrap_or(0)
}

/// The `n`th tab (0-based), if there are so many.
pub fn nth(n: usize) -> Option<TabId> {
    TABS.get(n).map(|t| t.id)
}

pub fn first() -> TabId {
    TABS[0].id
}

pub fn cycled(id: TabId, forward: bool) -> TabId {
    let n = TABS.len();
    TABS[(index(id) + if forward { 1 } else { n - 1 }) % n].id
}

/// The tabs' help sections in their overlay order.
pub fn help() -> Vec<HelpSection> {
    let mut sections: Vec<(u8, HelpSection)> = TABS.iter().filter_map(|t| t.help).collect();
    sections.sort_by_key(|(place, _)| *place);
    sections.into_iter().map(|(_, s)| s).collect()
}
