//! Job kinds, ordering keys and dedupe keys of the Chatwoot flow. The
//! server builds webhook jobs with [`event_job`]; the flow enqueues the rest.

use chatwoot::Event;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use store::NewJob;

/// One webhook body to apply (`{source, event}`), ordered per conversation
/// (contact events: per contact).
pub const EVENT: &str = "chatwoot.event";
/// One poll of the target for changed tickets (self-rescheduling).
pub const POLL: &str = "chatwoot.poll";
/// A linked ticket changed in the target: copy replies and status back.
pub const TICKET_CHANGED: &str = "chatwoot.ticket_changed";
/// The reconciliation sweep over recently updated conversations
/// (self-rescheduling).
pub const RECONCILE: &str = "chatwoot.reconcile";
/// Repair one conversation (missing ticket, followups, status drift).
pub const REPAIR: &str = "chatwoot.repair";

/// Every job kind this flow handles.
pub const KINDS: [&str; 5] = [EVENT, POLL, TICKET_CHANGED, RECONCILE, REPAIR];

/// Events the flow acts on; every other one is acknowledged and ignored.
pub fn is_handled(event: &Event) -> bool {
    !matches!(event, Event::Other(_))
}

/// Jobs of one conversation run one at a time, in order.
pub fn conversation_key(source: &str, conversation_id: u64) -> String {
    format!("chatwoot:{source}:conversation:{conversation_id}")
}

/// Jobs of one contact run one at a time, in order.
pub fn contact_key(source: &str, contact_id: u64) -> String {
    format!("chatwoot:{source}:contact:{contact_id}")
}

/// The ordering key of a webhook event: per conversation, per contact for
/// contact events, else per event name.
pub fn ordering_key(source: &str, event: &Event) -> String {
    match event {
        Event::ContactCreated(e) | Event::ContactUpdated(e) => contact_key(source, e.contact.id),
        other => match other.conversation_id() {
            Some(id) => conversation_key(source, id),
            None => format!("chatwoot:{source}:{}", other.name()),
        },
    }
}

/// Dedupe key without `X-Chatwoot-Delivery` (Chatwoot < 4.11.2): event
/// name, object id and what identifies this change of it (message id,
/// `updated_at`, a hash of the diff or of the content).
pub fn derived_dedupe_key(event: &Event, raw: &Value) -> String {
    let digest = |value: Option<&Value>| -> String {
        let text = value.map(Value::to_string).unwrap_or_default();
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    };
    let name = event.name();
    match event {
        Event::MessageCreated(m) => format!("{name}:{}", m.id),
        Event::MessageUpdated(m) => {
            let changed = json!([
                raw.get("content"),
                raw.get("content_attributes"),
                raw.get("status")
            ]);
            format!("{name}:{}:{}", m.id, digest(Some(&changed)))
        }
        Event::ConversationCreated(c) => format!("{name}:{}", c.conversation.id),
        Event::ConversationUpdated(c) | Event::ConversationStatusChanged(c) => format!(
            "{name}:{}:{}:{}:{}",
            c.conversation.id,
            raw.get("updated_at")
                .map(Value::to_string)
                .unwrap_or_default(),
            c.conversation.status.map(|s| s.as_str()).unwrap_or(""),
            digest(raw.get("changed_attributes"))
        ),
        Event::ContactCreated(c) => format!("{name}:{}", c.contact.id),
        Event::ContactUpdated(c) => format!(
            "{name}:{}:{}",
            c.contact.id,
            digest(raw.get("changed_attributes"))
        ),
        Event::Other(_) => format!("{name}:{}", digest(Some(raw))),
    }
}

/// The job applying one webhook body of `source`, on the target's queue.
pub fn event_job(
    source: &str,
    target: &str,
    event: &Event,
    raw: Value,
    max_attempts: i32,
) -> NewJob {
    NewJob::new(
        target,
        EVENT,
        ordering_key(source, event),
        json!({"source": source, "event": raw}),
    )
    .max_attempts(max_attempts)
}

/// The next poll of `source`, at `run_at` (unix ms); one pending at a time.
pub fn poll_job(source: &str, target: &str, run_at: i64) -> NewJob {
    NewJob::new(
        target,
        POLL,
        format!("chatwoot:{source}:poll"),
        json!({"source": source}),
    )
    .run_at(run_at)
    .unique_key(format!("chatwoot:{source}:poll"))
}

/// The next reconciliation sweep of `source`; one pending at a time.
pub fn reconcile_job(source: &str, target: &str, run_at: i64) -> NewJob {
    NewJob::new(
        target,
        RECONCILE,
        format!("chatwoot:{source}:reconcile"),
        json!({"source": source}),
    )
    .run_at(run_at)
    .unique_key(format!("chatwoot:{source}:reconcile"))
}

/// Repair of one conversation, in its order; one pending per conversation.
pub fn repair_job(source: &str, target: &str, conversation_id: u64) -> NewJob {
    NewJob::new(
        target,
        REPAIR,
        conversation_key(source, conversation_id),
        json!({"source": source, "conversation_id": conversation_id}),
    )
    .unique_key(format!("chatwoot:{source}:repair:{conversation_id}"))
}

/// A linked ticket changed: copy it back, in the conversation's order.
///
/// `settled_before`: the newest change time the poll saw. The target's clock
/// had passed every earlier second when the poll ran, so a ticket last
/// changed before it can change no more within that second.
pub fn ticket_changed_job(
    source: &str,
    target: &str,
    conversation_id: u64,
    ticket_id: i64,
    settled_before: &str,
) -> NewJob {
    NewJob::new(
        target,
        TICKET_CHANGED,
        conversation_key(source, conversation_id),
        json!({
            "source": source,
            "conversation_id": conversation_id,
            "ticket_id": ticket_id,
            "settled_before": settled_before,
        }),
    )
    .unique_key(format!("chatwoot:{source}:ticket_changed:{ticket_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../tests/fixtures/chatwoot/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn ordering_per_conversation_and_contact() {
        let message = fixture("message_created.incoming.json");
        let event = Event::from_value(message.clone()).unwrap();
        assert_eq!(ordering_key("cw", &event), "chatwoot:cw:conversation:482");
        let status = Event::from_value(fixture("conversation_status_changed.json")).unwrap();
        assert_eq!(ordering_key("cw", &status), "chatwoot:cw:conversation:482");
        let contact = Event::from_value(fixture("contact_updated.json")).unwrap();
        assert_eq!(ordering_key("cw", &contact), "chatwoot:cw:contact:1201");
    }

    #[test]
    fn derived_keys_tell_changes_apart_and_repeat_for_the_same_body() {
        let raw = fixture("conversation_updated.json");
        let event = Event::from_value(raw.clone()).unwrap();
        let key = derived_dedupe_key(&event, &raw);
        assert_eq!(key, derived_dedupe_key(&event, &raw));
        let mut other = raw.clone();
        other["updated_at"] = json!(1.5);
        let other_event = Event::from_value(other.clone()).unwrap();
        assert_ne!(key, derived_dedupe_key(&other_event, &other));
        let msg = fixture("message_created.incoming.json");
        let msg_event = Event::from_value(msg.clone()).unwrap();
        assert!(derived_dedupe_key(&msg_event, &msg).starts_with("message_created:"));
    }
}
