//! `kind = "itop"` sources: one iTop ↔ iTop bridge (the seed's "external"
//! customer iTop and "internal" provider iTop).
//!
//! One source describes the whole bridge: `target` (alias `internal_target`)
//! is the internal iTop where tickets are created, `external_target` the
//! external iTop they come from. Both name `[targets.*]` of kind `itop`.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// UserRequest states a status mapping may name.
pub const ITOP_STATES: [&str; 10] = [
    "new",
    "escalated_tto",
    "assigned",
    "escalated_ttr",
    "waiting_for_approval",
    "approved",
    "rejected",
    "pending",
    "resolved",
    "closed",
];

/// States the bridge can reach with stimuli (the others are only mapped from).
pub const REACHABLE_STATES: [&str; 5] = ["new", "assigned", "pending", "resolved", "closed"];

fn default_reconcile_interval() -> Duration {
    Duration::from_secs(300)
}

fn default_ticket_class() -> String {
    "UserRequest".to_owned()
}

fn default_resolution_code() -> String {
    "other".to_owned()
}

fn default_pending_reason() -> String {
    "Waiting (synchronised from the other iTop)".to_owned()
}

fn default_solution() -> String {
    "Resolved (synchronised from the other iTop)".to_owned()
}

fn default_internal_sources() -> Vec<String> {
    vec!["elitery".to_owned(), "internal".to_owned()]
}

/// The default state mapping: the five common states map to themselves,
/// escalated_ttr counts as assigned; the approval states are not mapped.
pub fn default_status_map() -> BTreeMap<String, String> {
    [
        ("new", "new"),
        ("assigned", "assigned"),
        ("escalated_ttr", "assigned"),
        ("pending", "pending"),
        ("resolved", "resolved"),
        ("closed", "closed"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect()
}

/// Fixed values the bridge writes on the internal side (never copied from
/// the external ticket: agents and organisations are not synchronised).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalDefaults {
    /// Organization of every ticket created on the internal side.
    pub org_id: u64,
    /// Person set as caller of created tickets.
    pub caller_id: u64,
    /// Team set on created tickets and used by `ev_assign`.
    pub team_id: Option<u64>,
    /// Agent (Person) set on created tickets and used by `ev_assign`.
    pub agent_id: Option<u64>,
    /// Service set on created tickets (some data models require it to resolve).
    pub service_id: Option<u64>,
}

/// Values used on the external side when a status change needs them and the
/// external ticket has none (e.g. `ev_assign` without a team).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalDefaults {
    pub team_id: Option<u64>,
    pub agent_id: Option<u64>,
}

/// One iTop ↔ iTop bridge.
///
/// Owned by the itop flow: its fields and checks live here so each source
/// kind changes in one file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItopSource {
    /// The internal iTop (where external tickets are mirrored).
    #[serde(alias = "internal_target")]
    pub target: String,
    /// The external iTop (where tickets originate).
    pub external_target: String,
    /// Accepted `X-API-Key` values (several allow rotation). On the shared
    /// `/api/v1/*` paths the key also tells which bridge a call belongs to, so
    /// keys must be unique across itop sources.
    pub api_keys: Vec<SecretString>,
    /// Ticket class mirrored on both sides.
    #[serde(default = "default_ticket_class")]
    pub ticket_class: String,
    /// Values the bridge sets on the internal side.
    pub internal: InternalDefaults,
    /// Values used on the external side when a stimulus needs them.
    #[serde(default)]
    pub external: ExternalDefaults,
    /// External state → internal state. Unmapped states are not pushed.
    #[serde(default = "default_status_map")]
    pub status_to_internal: BTreeMap<String, String>,
    /// Internal state → external state. Unmapped states are not pushed.
    #[serde(default = "default_status_map")]
    pub status_to_external: BTreeMap<String, String>,
    /// `resolution_code` sent with `ev_resolve` when the source ticket has none.
    #[serde(default = "default_resolution_code")]
    pub resolution_code: String,
    /// `pending_reason` sent with `ev_pending` when the source ticket has none.
    #[serde(default = "default_pending_reason")]
    pub pending_reason: String,
    /// `solution` sent with `ev_resolve` when the source ticket has none.
    #[serde(default = "default_solution")]
    pub solution: String,
    /// Values of the attachment payload's `source` field that mean "internal"
    /// (the seed's internal iTop says "elitery"); "external" means external.
    #[serde(default = "default_internal_sources")]
    pub internal_source_names: Vec<String>,
    /// How often every linked ticket pair is compared and repaired
    /// (iTop never retries a webhook).
    #[serde(default = "default_reconcile_interval", with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// REST logins the bridge uses on each side; webhooks whose actor
    /// (`actor` / `by` payload field) is one of these are echoes and dropped.
    /// Default: the targets' `user`.
    #[serde(default)]
    pub own_logins: Vec<String>,
}

impl ItopSource {
    /// Adds a problem for every invalid field (paths start with `prefix`).
    pub fn validate(&self, prefix: &str, problem: &mut dyn FnMut(String, String)) {
        if self.external_target.trim().is_empty() {
            problem(
                format!("{prefix}.external_target"),
                "must name the external iTop target".into(),
            );
        } else if self.external_target == self.target {
            problem(
                format!("{prefix}.external_target"),
                "must differ from target (the internal iTop)".into(),
            );
        }
        if self.api_keys.is_empty() {
            problem(
                format!("{prefix}.api_keys"),
                "at least one key is required".into(),
            );
        }
        for (i, key) in self.api_keys.iter().enumerate() {
            if key.expose_secret().trim().is_empty() {
                problem(
                    format!("{prefix}.api_keys[{i}]"),
                    "must not be empty".into(),
                );
            }
        }
        if self.ticket_class.trim().is_empty() {
            problem(format!("{prefix}.ticket_class"), "must not be empty".into());
        }
        if self.internal.org_id == 0 {
            problem(
                format!("{prefix}.internal.org_id"),
                "must be the id of an Organization (> 0)".into(),
            );
        }
        if self.internal.caller_id == 0 {
            problem(
                format!("{prefix}.internal.caller_id"),
                "must be the id of a Person (> 0)".into(),
            );
        }
        for (name, value) in [
            ("internal.team_id", self.internal.team_id),
            ("internal.agent_id", self.internal.agent_id),
            ("internal.service_id", self.internal.service_id),
            ("external.team_id", self.external.team_id),
            ("external.agent_id", self.external.agent_id),
        ] {
            if value == Some(0) {
                problem(
                    format!("{prefix}.{name}"),
                    "must be an id (> 0) or left out".into(),
                );
            }
        }
        for (table, map) in [
            ("status_to_internal", &self.status_to_internal),
            ("status_to_external", &self.status_to_external),
        ] {
            for (from, to) in map {
                if !ITOP_STATES.contains(&from.as_str()) {
                    problem(
                        format!("{prefix}.{table}.{from}"),
                        format!("unknown state (known: {})", ITOP_STATES.join(", ")),
                    );
                }
                if !REACHABLE_STATES.contains(&to.as_str()) {
                    problem(
                        format!("{prefix}.{table}.{from}"),
                        format!(
                            "\"{to}\" cannot be reached by the bridge (use one of {})",
                            REACHABLE_STATES.join(", ")
                        ),
                    );
                }
            }
        }
        for (name, value) in [
            ("resolution_code", &self.resolution_code),
            ("pending_reason", &self.pending_reason),
            ("solution", &self.solution),
        ] {
            if value.trim().is_empty() {
                problem(
                    format!("{prefix}.{name}"),
                    "must not be empty (iTop requires it for the stimulus)".into(),
                );
            }
        }
        if self
            .internal_source_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case("external"))
        {
            problem(
                format!("{prefix}.internal_source_names"),
                "\"external\" always means the external side".into(),
            );
        }
        if self.reconcile_interval < Duration::from_millis(100) {
            problem(
                format!("{prefix}.reconcile_interval"),
                "must be at least 100ms".into(),
            );
        }
    }

    /// One line for `config check`, with no secret in it.
    pub fn summary(&self) -> String {
        format!(
            "external_target={} api_keys={} ticket_class={} internal.org_id={} internal.caller_id={} \
             reconcile_interval={}",
            self.external_target,
            self.api_keys.len(),
            self.ticket_class,
            self.internal.org_id,
            self.internal.caller_id,
            humantime_serde::re::humantime::format_duration(self.reconcile_interval)
        )
    }
}
