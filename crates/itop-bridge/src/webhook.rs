//! Inbound iTop webhooks: the payload shapes of the seed's set-up
//! (`tests/fixtures/itop/real-webhooks.txt`) and the generic one, which side
//! they come from, their dedupe key and the job they cause.
//!
//! The server calls [`Webhook::parse`], [`dedupe_key`] and [`job`]; the work
//! happens later in the `itop.webhook` job ([`crate::dispatch`]).

use config::sources::ItopSource;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use store::{NewJob, Store, StoreError};

use crate::side::Side;

/// Job kind of an accepted webhook.
pub const WEBHOOK_JOB: &str = "itop.webhook";
/// Store kv namespace of the per-subject generation counters used in dedupe keys.
pub const GENERATION_NS: &str = "itop-bridge.generation";

/// The seed's endpoints (`/api/v1/<path>`) plus the generic event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// External: `{"event":"ticket.create","class","id","ref",...}`.
    CreateTicket,
    /// External: `{"class":"UserRequest","id":"1"}` on every ticket change.
    UpdateTicket,
    /// Either side (payload `source`): attachment updated or being deleted.
    UpdateAttachment,
    /// Internal: `{"event":"ticket assigned","id":"1"}`.
    TicketStateChange,
    /// Internal: `{"event":"update private log","id":"1"}`.
    TicketUpdatePrivateLog,
    /// External (the original bridge's extra route): private log changed.
    UpdatePrivateLog,
    /// Generic: `{"instance","event","class","id",...,"actor"}`.
    Event,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::CreateTicket,
        Endpoint::UpdateTicket,
        Endpoint::UpdateAttachment,
        Endpoint::TicketStateChange,
        Endpoint::TicketUpdatePrivateLog,
        Endpoint::UpdatePrivateLog,
        Endpoint::Event,
    ];

    /// The path segment (`create-ticket`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::CreateTicket => "create-ticket",
            Endpoint::UpdateTicket => "update-ticket",
            Endpoint::UpdateAttachment => "update-attachment",
            Endpoint::TicketStateChange => "ticket-state-change",
            Endpoint::TicketUpdatePrivateLog => "ticket-update-private-log",
            Endpoint::UpdatePrivateLog => "update-private-log",
            Endpoint::Event => "event",
        }
    }

    pub fn from_path(segment: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.as_str() == segment)
    }

    /// The side the seed's set-up sends this from, when the endpoint says.
    pub fn implied_side(self) -> Option<Side> {
        match self {
            Endpoint::CreateTicket | Endpoint::UpdateTicket | Endpoint::UpdatePrivateLog => {
                Some(Side::External)
            }
            Endpoint::TicketStateChange | Endpoint::TicketUpdatePrivateLog => Some(Side::Internal),
            Endpoint::UpdateAttachment | Endpoint::Event => None,
        }
    }
}

/// Why a payload was refused (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WebhookError(pub String);

/// A parsed webhook: what changed, on which side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub side: Side,
    pub endpoint: Endpoint,
    /// The ticket on `side`, when the payload names it.
    pub ticket_id: Option<u64>,
    pub attachment_id: Option<u64>,
    /// `item_class` of an attachment payload / `class` of a generic one.
    pub class: Option<String>,
    /// `actor` or `by` (`$current_user->login$`), when the template sends it.
    pub actor: Option<String>,
    /// The payload's `event` text, for logs.
    pub event: Option<String>,
}

/// An id as iTop renders it: `"42"`, `42`; `""`, `"0"` and `"undefined"` are none.
fn lenient_id(body: &Value, field: &str) -> Option<u64> {
    match body.get(field)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|id| *id > 0)
}

fn text(body: &Value, field: &str) -> Option<String> {
    body.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "undefined")
        .map(str::to_string)
}

fn side_named(name: &str, internal_names: &[String]) -> Option<Side> {
    if name.eq_ignore_ascii_case("external") {
        Some(Side::External)
    } else if internal_names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        Some(Side::Internal)
    } else {
        None
    }
}

impl Webhook {
    /// Reads a payload. `side` comes from the namespaced path when there is
    /// one; otherwise from the endpoint (the seed's routes are one-sided) or
    /// the payload's `source` / `instance` field (`"external"`, or one of
    /// `internal_names`, e.g. the seed's `"elitery"`).
    pub fn parse(
        endpoint: Endpoint,
        side: Option<Side>,
        body: &Value,
        internal_names: &[String],
    ) -> Result<Webhook, WebhookError> {
        if !body.is_object() {
            return Err(WebhookError("the payload must be a JSON object".into()));
        }
        let side = match side.or(endpoint.implied_side()) {
            Some(side) => side,
            None => {
                let name = ["source", "instance"]
                    .iter()
                    .find_map(|f| text(body, f))
                    .ok_or_else(|| WebhookError("cannot tell which iTop sent this".into()))?;
                side_named(&name, internal_names).ok_or_else(|| {
                    WebhookError(format!(
                        "unknown side {name:?}: use \"external\" or one of {internal_names:?}"
                    ))
                })?
            }
        };
        let actor = text(body, "actor").or_else(|| text(body, "by"));
        let event = text(body, "event");
        let mut hook = Webhook {
            side,
            endpoint,
            ticket_id: None,
            attachment_id: None,
            class: None,
            actor,
            event,
        };
        match endpoint {
            Endpoint::UpdateAttachment => {
                hook.attachment_id = Some(
                    lenient_id(body, "attachment_id")
                        .ok_or_else(|| WebhookError("attachment_id is missing".into()))?,
                );
                hook.ticket_id = lenient_id(body, "item_id");
                hook.class = text(body, "item_class");
            }
            Endpoint::Event => {
                let id =
                    lenient_id(body, "id").ok_or_else(|| WebhookError("id is missing".into()))?;
                let class = text(body, "class");
                if class.as_deref() == Some("Attachment") {
                    hook.attachment_id = Some(id);
                    hook.ticket_id = lenient_id(body, "item_id");
                    hook.class = text(body, "item_class");
                } else {
                    hook.ticket_id = Some(id);
                    hook.class = class;
                }
            }
            _ => {
                hook.ticket_id = Some(
                    lenient_id(body, "id").ok_or_else(|| WebhookError("id is missing".into()))?,
                );
                hook.class = text(body, "class");
            }
        }
        Ok(hook)
    }

    /// What the webhook is about on its side: `ticket:1` or `attachment:5`.
    pub fn subject(&self) -> String {
        match (self.ticket_id, self.attachment_id) {
            (Some(t), _) => format!("ticket:{t}"),
            (None, Some(a)) => format!("attachment:{a}"),
            (None, None) => "unknown".into(),
        }
    }

    fn generation_key(&self, source: &str) -> String {
        format!("{source}:{}:{}", self.side, self.subject())
    }
}

/// The dedupe key: a hash of the source, side, endpoint and payload, plus
/// the subject's generation — a counter the `itop.webhook` job bumps when it
/// starts. iTop's thin payloads are identical for distinct changes
/// (`{"class":"UserRequest","id":"1"}`), so a repeat is a duplicate only
/// while the earlier delivery has not been acted on yet; once it has, the
/// same payload announces a new change. Either way a repeat changes nothing:
/// the job reads the current state.
pub async fn dedupe_key(
    store: &Store,
    source: &str,
    webhook: &Webhook,
    body: &Value,
) -> Result<String, StoreError> {
    let generation = store
        .kv_get(GENERATION_NS, &webhook.generation_key(source))
        .await?
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    Ok(dedupe_key_at(source, webhook, body, generation))
}

/// [`dedupe_key`] for a known generation.
pub fn dedupe_key_at(source: &str, webhook: &Webhook, body: &Value, generation: i64) -> String {
    let mut hasher = Sha256::new();
    for part in [
        source,
        webhook.side.as_str(),
        webhook.endpoint.as_str(),
        &body.to_string(),
        &generation.to_string(),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    format!("itop:{}", hex::encode(hasher.finalize()))
}

/// Bumps the subject's generation (called when the job starts).
pub async fn next_generation(
    store: &Store,
    source: &str,
    webhook: &Webhook,
) -> Result<(), StoreError> {
    let key = webhook.generation_key(source);
    let current = store
        .kv_get(GENERATION_NS, &key)
        .await?
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    store.kv_put(GENERATION_NS, &key, &json!(current + 1)).await
}

/// The `itop.webhook` job for an accepted webhook, ordered per subject.
pub fn job(source: &str, settings: &ItopSource, max_attempts: i32, webhook: &Webhook) -> NewJob {
    NewJob::new(
        settings.target.clone(),
        WEBHOOK_JOB,
        format!("itop:{source}:{}:{}", webhook.side, webhook.subject()),
        json!({"source": source, "webhook": webhook}),
    )
    .max_attempts(max_attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal() -> Vec<String> {
        vec!["elitery".into(), "internal".into()]
    }

    #[test]
    fn seed_payloads_parse_with_their_side() {
        let create: Value = serde_json::from_str(r#"{"event":"ticket.create","class":"UserRequest","id":"1","ref":"R-000001","title":"t","status":"new","caller_id":"Christie","org_id":"Demo","team_id":"undefined","operator_id":"undefined","priority":"4"}"#).unwrap();
        let h = Webhook::parse(Endpoint::CreateTicket, None, &create, &internal()).unwrap();
        assert_eq!((h.side, h.ticket_id), (Side::External, Some(1)));
        let att: Value = serde_json::from_str(r#"{"event":"attachment.update","source":"elitery","attachment_id":"7","item_class":"UserRequest","item_id":"3"}"#).unwrap();
        let h = Webhook::parse(Endpoint::UpdateAttachment, None, &att, &internal()).unwrap();
        assert_eq!(
            (h.side, h.ticket_id, h.attachment_id),
            (Side::Internal, Some(3), Some(7))
        );
        let state: Value = serde_json::from_str(r#"{"event":"ticket assigned","id":"1"}"#).unwrap();
        let h = Webhook::parse(Endpoint::TicketStateChange, None, &state, &internal()).unwrap();
        assert_eq!(h.side, Side::Internal);
        let bad: Value = serde_json::from_str(
            r#"{"event":"attachment.update","source":"mars","attachment_id":"1"}"#,
        )
        .unwrap();
        assert!(Webhook::parse(Endpoint::UpdateAttachment, None, &bad, &internal()).is_err());
        assert!(
            Webhook::parse(
                Endpoint::UpdateTicket,
                None,
                &json!({"class":"UserRequest"}),
                &internal()
            )
            .is_err()
        );
    }

    #[test]
    fn dedupe_key_changes_with_generation_and_payload() {
        let body = json!({"class":"UserRequest","id":"1"});
        let h = Webhook::parse(Endpoint::UpdateTicket, None, &body, &internal()).unwrap();
        let k0 = dedupe_key_at("b", &h, &body, 0);
        assert_eq!(k0, dedupe_key_at("b", &h, &body, 0));
        assert_ne!(k0, dedupe_key_at("b", &h, &body, 1));
        assert_ne!(k0, dedupe_key_at("c", &h, &body, 0));
    }
}
