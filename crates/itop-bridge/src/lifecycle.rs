//! The UserRequest lifecycle as the bridge walks it: from a current state to
//! a wanted one, one stimulus at a time (spec §8.2 transition table).

/// One transition the bridge applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `ev_assign` (needs team_id and agent_id).
    Assign,
    /// `ev_reopen` (resolved → assigned, rejected → new).
    Reopen,
    /// `ev_pending` (needs pending_reason).
    Pending,
    /// `ev_resolve` (needs solution; resolution_code, service_id).
    Resolve,
    /// `ev_close`.
    Close,
}

impl Step {
    pub fn stimulus(self) -> &'static str {
        match self {
            Step::Assign => "ev_assign",
            Step::Reopen => "ev_reopen",
            Step::Pending => "ev_pending",
            Step::Resolve => "ev_resolve",
            Step::Close => "ev_close",
        }
    }

    /// The state the step leads to from `from`.
    pub fn lands_in(self, from: &str) -> &'static str {
        match (self, from) {
            (Step::Reopen, "rejected") => "new",
            (Step::Assign | Step::Reopen, _) => "assigned",
            (Step::Pending, _) => "pending",
            (Step::Resolve, _) => "resolved",
            (Step::Close, _) => "closed",
        }
    }
}

/// Why the wanted state cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot go from {from} to {to}: {why}")]
pub struct Blocked {
    pub from: String,
    pub to: String,
    pub why: &'static str,
}

/// The next step from `current` towards `wanted`; `None` when there.
pub fn next_step(current: &str, wanted: &str) -> Result<Option<Step>, Blocked> {
    let blocked = |why| Blocked {
        from: current.to_string(),
        to: wanted.to_string(),
        why,
    };
    if current == wanted {
        return Ok(None);
    }
    let working = matches!(current, "assigned" | "escalated_ttr");
    let step = match (current, wanted) {
        ("closed", _) => return Err(blocked("closed is final")),
        ("waiting_for_approval", _) => return Err(blocked("the ticket waits for approval")),
        ("rejected", _) => Step::Reopen,
        (_, "new") => return Err(blocked("a ticket does not go back to new")),
        ("assigned", "assigned") => return Ok(None),
        ("escalated_ttr", "assigned") => return Ok(None),
        ("resolved", "closed") => Step::Close,
        ("resolved", _) => Step::Reopen,
        (_, "pending") if working => Step::Pending,
        (_, "resolved" | "closed") if working => Step::Resolve,
        (_, "assigned" | "pending" | "resolved" | "closed") => Step::Assign,
        _ => return Err(blocked("the bridge does not drive tickets to this state")),
    };
    Ok(Some(step))
}

/// The whole path (for docs and tests).
pub fn path(from: &str, wanted: &str) -> Result<Vec<Step>, Blocked> {
    let mut steps = Vec::new();
    let mut at = from.to_string();
    while let Some(step) = next_step(&at, wanted)? {
        steps.push(step);
        at = step.lands_in(&at).to_string();
        if steps.len() > 5 {
            break;
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_transition_table() {
        use Step::*;
        assert_eq!(path("new", "assigned").unwrap(), vec![Assign]);
        assert_eq!(path("new", "resolved").unwrap(), vec![Assign, Resolve]);
        assert_eq!(path("new", "closed").unwrap(), vec![Assign, Resolve, Close]);
        assert_eq!(path("pending", "resolved").unwrap(), vec![Assign, Resolve]);
        assert_eq!(path("resolved", "pending").unwrap(), vec![Reopen, Pending]);
        assert_eq!(path("assigned", "assigned").unwrap(), vec![]);
        assert_eq!(path("escalated_ttr", "assigned").unwrap(), vec![]);
        assert_eq!(path("rejected", "assigned").unwrap(), vec![Reopen, Assign]);
        assert!(path("closed", "assigned").is_err());
        assert!(path("assigned", "new").is_err());
    }
}
