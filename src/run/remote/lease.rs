//! The controller lease: any number of viewers read, at most one steers. The first to ask
//! gets it; a second asking is told who holds it and may take it over explicitly; it is
//! released when its holder lets go or disconnects. Plain bookkeeping, keyed by the
//! server's viewer ids; the server turns the outcomes into messages.

use super::protocol::{Holder, Who};

/// A connection's number within one server.
pub type ViewerId = u64;

#[derive(Debug, Default)]
pub struct Lease {
    held: Option<(ViewerId, Holder)>,
}

/// What asking for the lease did.
#[derive(Debug, Clone, PartialEq)]
pub enum Asked {
    Granted,
    /// The asker holds it already.
    AlreadyYours,
    /// Someone else holds it and the asker did not take it over.
    HeldBy(Holder),
    /// Taken over from this viewer (who must be told).
    TakenFrom(ViewerId, Holder),
}

impl Lease {
    pub fn holder(&self) -> Option<&Holder> {
        self.held.as_ref().map(|(_, h)| h)
    }

    pub fn is_held_by(&self, id: ViewerId) -> bool {
        self.held.as_ref().is_some_and(|(v, _)| *v == id)
    }

    /// `now`: unix seconds, recorded as the holder's "since".
    pub fn ask(&mut self, id: ViewerId, who: &Who, take_over: bool, now: f64) -> Asked {
        let new = || (id, Holder { who: who.clone(), since: now });
        match self.held.take() {
            None => {
                self.held = Some(new());
                Asked::Granted
            }
            Some((v, h)) if v == id => {
                self.held = Some((v, h));
                Asked::AlreadyYours
            }
            Some((v, h)) if take_over => {
                self.held = Some(new());
                Asked::TakenFrom(v, h)
            }
            Some((v, h)) => {
                self.held = Some((v, h.clone()));
                Asked::HeldBy(h)
            }
        }
    }

    /// Lets go of the lease if `id` holds it; true if it did.
    pub fn release(&mut self, id: ViewerId) -> bool {
        if self.is_held_by(id) {
            self.held = None;
            true
        } else {
            false
        }
    }

    /// Ok if `id` may send controls; else why not, naming the holder.
    pub fn check(&self, id: ViewerId, what: &str) -> Result<(), String> {
        match &self.held {
            Some((v, _)) if *v == id => Ok(()),
            Some((_, h)) => {
                Err(format!("{what} refused: {h} holds the controller lease; take control to steer the run"))
            }
            None => Err(format!("{what} refused: ask for the controller lease first (nobody holds it)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(user: &str, pid: u32) -> Who {
        Who { user: user.into(), host: "box".into(), pid }
    }

    #[test]
    fn first_asker_wins_a_second_is_told_and_can_take_over_and_disconnect_releases() {
        let mut l = Lease::default();
        assert!(l.check(1, "Pause").unwrap_err().contains("nobody holds it"));
        assert_eq!(l.ask(1, &who("ann", 10), false, 100.0), Asked::Granted);
        assert_eq!(l.ask(1, &who("ann", 10), false, 101.0), Asked::AlreadyYours);
        let Asked::HeldBy(h) = l.ask(2, &who("bob", 20), false, 102.0) else { panic!("not refused") };
        assert_eq!((h.who.user.as_str(), h.since), ("ann", 100.0));
        let e = l.check(2, "Stop").unwrap_err();
        assert!(e.contains("ann@box pid 10") && e.contains("Stop refused"), "{e}");
        assert!(l.check(1, "Stop").is_ok());
        let Asked::TakenFrom(from, _) = l.ask(2, &who("bob", 20), true, 103.0) else { panic!("no takeover") };
        assert_eq!(from, 1);
        assert!(l.check(1, "Pause").unwrap_err().contains("bob@box pid 20"));
        assert!(!l.release(1), "a former holder cannot release the new holder's lease");
        assert!(l.release(2));
        assert!(l.holder().is_none());
    }
}
