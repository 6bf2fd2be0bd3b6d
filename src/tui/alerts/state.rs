//! The workbench's view of the run's alerts: open ones from the log, the viewer's own stall
//! judgement, whether the list is shown and whether the bell is owed.

use crate::run::alerts::{Alert, AlertsConfig, OpenAlerts};

#[derive(Debug, Default)]
pub struct AlertsState {
    /// The run's alerts as its log has them.
    pub log: OpenAlerts,
    /// The viewer's judgement that the run is stalled (not logged).
    pub stalled: Option<Alert>,
    /// The run's `[alerts]` (defaults for a run from before them).
    pub config: AlertsConfig,
    /// The list is shown.
    pub shown: bool,
    /// An alert was raised since the last frame and the bell is asked for: the loop rings it.
    pub ring: bool,
    /// Unix seconds the viewer opened: alerts logged before it do not ring.
    pub opened_at: f64,
}

impl AlertsState {
    /// Open alerts, the stall first.
    pub fn open(&self) -> Vec<&Alert> {
        self.stalled.iter().chain(self.log.open()).collect()
    }
}
