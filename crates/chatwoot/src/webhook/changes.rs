//! `changed_attributes` (spec §3.5) and the noise filter (spec §9.4).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One `{"key": {"previous_value": …, "current_value": …}}` element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeChange {
    #[serde(default)]
    pub previous_value: Value,
    #[serde(default)]
    pub current_value: Value,
}

/// The diff Chatwoot sends with conversation_updated / contact_updated: an
/// array of single-key objects, kept in the order received.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChangedAttributes(pub Vec<serde_json::Map<String, Value>>);

impl ChangedAttributes {
    /// Every `(key, change)` pair, in order. Elements that do not have the
    /// `previous_value`/`current_value` shape are reported with nulls.
    pub fn iter(&self) -> impl Iterator<Item = (&str, AttributeChange)> {
        self.0.iter().flat_map(|element| {
            element.iter().map(|(key, value)| {
                let change = serde_json::from_value(value.clone()).unwrap_or(AttributeChange {
                    previous_value: Value::Null,
                    current_value: Value::Null,
                });
                (key.as_str(), change)
            })
        })
    }

    /// The changed keys.
    pub fn keys(&self) -> Vec<&str> {
        self.0
            .iter()
            .flat_map(|element| element.keys().map(String::as_str))
            .collect()
    }

    /// The change of one key, if present.
    pub fn get(&self, key: &str) -> Option<AttributeChange> {
        self.iter().find(|(k, _)| *k == key).map(|(_, c)| c)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|element| element.is_empty())
    }

    /// Keys inside `custom_attributes` whose value differs between
    /// previous and current (added, removed or changed).
    pub fn changed_custom_attribute_keys(&self) -> BTreeSet<String> {
        let Some(change) = self.get("custom_attributes") else {
            return BTreeSet::new();
        };
        let empty = serde_json::Map::new();
        let previous = change.previous_value.as_object().unwrap_or(&empty);
        let current = change.current_value.as_object().unwrap_or(&empty);
        previous
            .keys()
            .chain(current.keys())
            .filter(|key| previous.get(*key) != current.get(*key))
            .cloned()
            .collect()
    }
}

/// Activity timestamps that change without anything a helpdesk cares about.
const ACTIVITY_KEYS: &[&str] = &[
    "updated_at",
    "last_activity_at",
    "waiting_since",
    "agent_last_seen_at",
    "contact_last_seen_at",
    "assignee_last_seen_at",
    "first_reply_created_at",
];

/// True when an update changed nothing but activity timestamps and/or our
/// own custom-attribute keys (`own_attribute_keys`, e.g. `glpi_ticket_id`),
/// so it needs no helpdesk write (spec §9.4).
///
/// An empty or `null` diff returns **false**: nothing says it is noise
/// (conversation_status_changed always has a `null` diff), so the caller
/// should compare with stored state instead of dropping it.
pub fn is_noise_only_update(changes: &ChangedAttributes, own_attribute_keys: &[&str]) -> bool {
    if changes.is_empty() {
        return false;
    }
    changes.iter().all(|(key, _)| {
        if ACTIVITY_KEYS.contains(&key) {
            return true;
        }
        if key == "custom_attributes" {
            return changes
                .changed_custom_attribute_keys()
                .iter()
                .all(|k| own_attribute_keys.contains(&k.as_str()));
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diff(value: Value) -> ChangedAttributes {
        serde_json::from_value(value).unwrap()
    }

    const OWN: &[&str] = &["glpi_ticket_id", "glpi_ticket_url"];

    #[test]
    fn timestamps_only_is_noise() {
        let d = diff(json!([
            {"updated_at": {"previous_value": "a", "current_value": "b"}},
            {"waiting_since": {"previous_value": 1, "current_value": 2}}
        ]));
        assert!(is_noise_only_update(&d, OWN));
    }

    #[test]
    fn own_custom_attributes_are_noise_but_foreign_ones_are_not() {
        let own = diff(json!([
            {"custom_attributes": {"previous_value": {"x": 1}, "current_value": {"x": 1, "glpi_ticket_id": 4321}}},
            {"updated_at": {"previous_value": "a", "current_value": "b"}}
        ]));
        assert!(is_noise_only_update(&own, OWN));
        let foreign = diff(json!([
            {"custom_attributes": {"previous_value": {"x": 1}, "current_value": {"x": 2, "glpi_ticket_id": 4321}}}
        ]));
        assert!(!is_noise_only_update(&foreign, OWN));
        assert_eq!(
            foreign
                .changed_custom_attribute_keys()
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["glpi_ticket_id".to_owned(), "x".to_owned()]
        );
    }

    #[test]
    fn status_change_is_not_noise() {
        let d = diff(json!([
            {"status": {"previous_value": "open", "current_value": "resolved"}},
            {"updated_at": {"previous_value": "a", "current_value": "b"}}
        ]));
        assert!(!is_noise_only_update(&d, OWN));
        assert_eq!(d.get("status").unwrap().current_value, json!("resolved"));
        assert_eq!(d.keys(), vec!["status", "updated_at"]);
    }

    #[test]
    fn empty_diff_is_not_declared_noise() {
        assert!(!is_noise_only_update(&ChangedAttributes::default(), OWN));
    }
}
