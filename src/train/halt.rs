//! Why a step ends without an update: stopped while sampling (discarded whole, the run ends
//! cleanly), or a NaN or infinity in its loss, gradients or updated weights (the run fails
//! there). Both are typed so the run driver can tell them from other errors.

/// A step given up during sampling (the cancel flag: SIGINT / SIGTERM): its rows are cut
/// short, so it is discarded whole: nothing scored, trained, logged or checkpointed, and the
/// trainer is as it was before it. A resumed run takes the step again, from the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCancelled {
    pub step: usize,
}

impl std::fmt::Display for StepCancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step {} was stopped while sampling; it is discarded (nothing trained)", self.step)
    }
}

impl std::error::Error for StepCancelled {}

/// A step whose loss, gradient norm or updated weights are NaN or infinite: the run must
/// end there, without checkpointing the damage.
#[derive(Debug, Clone, PartialEq)]
pub struct NonFinite {
    pub step: usize,
    /// What went non-finite, in words (`the loss is NaN`, `weight model.norm.weight ...`).
    pub what: String,
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {}: {}; the run stops here and this step is not checkpointed. Lower step.lr.lr or \
             step.max_grad_norm, or check the rewards, then continue from the last checkpoint",
            self.step, self.what
        )
    }
}

impl std::error::Error for NonFinite {}
