//! UserRequest / Incident lifecycle: transitions and per-state mandatory attributes
//! (itop-request-mgmt-itil, as observed on a real iTop 3.2.0).

/// Target state of `stimulus` from `state`, if that transition exists.
pub fn transition(class: &str, state: &str, stimulus: &str) -> Option<&'static str> {
    let approval = class == "UserRequest";
    let target = match (state, stimulus) {
        ("new", "ev_assign") => "assigned",
        ("new", "ev_timeout") => "escalated_tto",
        ("new", "ev_wait_for_approval") if approval => "waiting_for_approval",
        ("new", "ev_autoresolve") => "resolved",
        ("escalated_tto", "ev_assign") => "assigned",
        ("assigned", "ev_pending") => "pending",
        ("assigned", "ev_resolve") => "resolved",
        ("assigned", "ev_reassign") => "assigned",
        ("assigned", "ev_timeout") => "escalated_ttr",
        ("assigned", "ev_autoresolve") => "resolved",
        ("escalated_ttr", "ev_pending") => "pending",
        ("escalated_ttr", "ev_resolve") => "resolved",
        ("escalated_ttr", "ev_reassign") => "assigned",
        ("escalated_ttr", "ev_autoresolve") => "resolved",
        ("waiting_for_approval", "ev_approve") if approval => "approved",
        ("waiting_for_approval", "ev_reject") if approval => "rejected",
        ("approved", "ev_timeout") if approval => "escalated_tto",
        ("approved", "ev_assign") if approval => "assigned",
        ("approved", "ev_autoresolve") if approval => "resolved",
        ("rejected", "ev_reopen") if approval => "new",
        ("pending", "ev_assign") => "assigned",
        ("pending", "ev_autoresolve") => "resolved",
        ("resolved", "ev_close") => "closed",
        ("resolved", "ev_reopen") => "assigned",
        ("resolved", "ev_autoresolve") => "resolved",
        _ => return None,
    };
    Some(target)
}

/// Attributes flagged mandatory in `state`. iTop's check compares with `== ''`, so
/// external keys (empty = "0") never fail it: only string attributes do.
pub fn mandatory(state: &str) -> &'static [&'static str] {
    match state {
        "new" | "escalated_tto" | "waiting_for_approval" | "approved" | "rejected" => {
            &["org_id", "caller_id"]
        }
        "assigned" | "escalated_ttr" => &["org_id", "caller_id", "team_id", "agent_id"],
        "pending" => &[
            "org_id",
            "caller_id",
            "team_id",
            "agent_id",
            "pending_reason",
        ],
        "resolved" => &["service_id", "resolution_code", "solution"],
        _ => &[],
    }
}

/// Priority computed from impact and urgency (ITIL matrix).
pub fn priority(impact: &str, urgency: &str) -> &'static str {
    match (impact, urgency) {
        ("1", "1") | ("1", "2") | ("2", "1") => "1",
        ("1", "3") | ("2", "2") | ("3", "1") => "2",
        ("2", "3") | ("3", "2") | ("3", "3") => "3",
        _ => "4",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_spec() {
        assert_eq!(transition("UserRequest", "pending", "ev_resolve"), None);
        assert_eq!(
            transition("UserRequest", "pending", "ev_assign"),
            Some("assigned")
        );
        assert_eq!(transition("UserRequest", "closed", "ev_reopen"), None);
        assert_eq!(transition("Incident", "new", "ev_wait_for_approval"), None);
        assert_eq!(priority("3", "3"), "3");
        assert_eq!(priority("1", "4"), "4");
        assert_eq!(priority("1", "3"), "2");
    }
}
