//! Dropdowns looked up by name: ITIL categories and request types (spec §13.2), and the
//! session's profiles and entities (spec §3).

use serde::Deserialize;

use crate::client::{Call, GlpiClient};
use crate::error::GlpiError;
use crate::lenient;

/// A dropdown row (id, name, complete name for tree dropdowns).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DropdownItem {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub completename: String,
    /// ITIL categories: whether incidents may use it (absent on other dropdowns).
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub is_incident: Option<bool>,
    /// ITIL categories: whether requests may use it.
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    pub is_request: Option<bool>,
}

/// A profile of the logged-in user, with the entities it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MyProfile {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default)]
    pub entities: Vec<MyEntity>,
}

/// An entity of the logged-in user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MyEntity {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_recursive: bool,
}

/// The session's active entity selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveEntities {
    pub id: i64,
    pub recursive: bool,
    pub entity_ids: Vec<i64>,
}

/// The items named `name`: those whose complete name ("Parent > Child") is
/// `name`, else those whose own name is.
fn named(items: Vec<DropdownItem>, name: &str) -> Vec<DropdownItem> {
    let wanted = name.trim();
    let matches = |s: &str| s.trim().eq_ignore_ascii_case(wanted);
    let (by_complete, rest): (Vec<_>, Vec<_>) =
        items.into_iter().partition(|i| matches(&i.completename));
    if by_complete.is_empty() {
        rest.into_iter().filter(|i| matches(&i.name)).collect()
    } else {
        by_complete
    }
}

fn pick_by_name(items: Vec<DropdownItem>, name: &str) -> Option<i64> {
    named(items, name).first().map(|i| i.id)
}

/// An ITIL category and the ticket types it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Category {
    pub id: i64,
    pub incidents: bool,
    pub requests: bool,
}

impl GlpiClient {
    /// The ITIL category with this name or complete name ("Parent > Child"),
    /// case-insensitive. None if absent or not visible.
    pub async fn find_category(&self, name: &str) -> Result<Option<i64>, GlpiError> {
        self.find_dropdown("ITILCategory", name).await
    }

    /// The ITIL categories with this name or complete name, with the ticket
    /// types each takes (GLPI's `is_incident` / `is_request`; both when a
    /// row leaves them out). Several categories may share a name under
    /// different parents.
    pub async fn find_categories(&self, name: &str) -> Result<Vec<Category>, GlpiError> {
        let leaf = name.rsplit('>').next().unwrap_or(name).trim();
        if leaf.is_empty() {
            return Err(GlpiError::InvalidInput("empty name".into()));
        }
        let items: Vec<DropdownItem> = self
            .list_items_matching("ITILCategory", "name", leaf)
            .await?;
        Ok(named(items, name)
            .into_iter()
            .map(|i| Category {
                id: i.id,
                incidents: i.is_incident.unwrap_or(true),
                requests: i.is_request.unwrap_or(true),
            })
            .collect())
    }

    /// The request type (request source) with this name, case-insensitive.
    pub async fn find_request_type(&self, name: &str) -> Result<Option<i64>, GlpiError> {
        self.find_dropdown("RequestType", name).await
    }

    /// Any dropdown by name (`searchText[name]` then an exact check on the rows).
    pub async fn find_dropdown(
        &self,
        itemtype: &str,
        name: &str,
    ) -> Result<Option<i64>, GlpiError> {
        let leaf = name.rsplit('>').next().unwrap_or(name).trim();
        if leaf.is_empty() {
            return Err(GlpiError::InvalidInput("empty name".into()));
        }
        let items: Vec<DropdownItem> = self.list_items_matching(itemtype, "name", leaf).await?;
        Ok(pick_by_name(items, name))
    }

    /// `getMyProfiles`.
    pub async fn my_profiles(&self) -> Result<Vec<MyProfile>, GlpiError> {
        let (value, _) = self.get_json(Call::get("getMyProfiles")).await?;
        crate::items::from_value(value.get("myprofiles").cloned().unwrap_or_default())
    }

    /// `getActiveProfile` → (id, name).
    pub async fn active_profile(&self) -> Result<(i64, String), GlpiError> {
        let (value, reply) = self.get_json(Call::get("getActiveProfile")).await?;
        let profile = value
            .get("active_profile")
            .ok_or_else(|| GlpiError::InvalidResponse {
                status: reply.status,
                detail: "no active_profile".into(),
            })?;
        Ok((
            profile
                .get("id")
                .and_then(lenient::int_from_value)
                .unwrap_or(0),
            profile
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_owned(),
        ))
    }

    /// `getMyEntities` (recursive: include sub-entities).
    pub async fn my_entities(&self, recursive: bool) -> Result<Vec<MyEntity>, GlpiError> {
        let call = Call::get("getMyEntities")
            .query("is_recursive", if recursive { "true" } else { "false" });
        let (value, _) = self.get_json(call).await?;
        crate::items::from_value(value.get("myentities").cloned().unwrap_or_default())
    }

    /// `getActiveEntities`.
    pub async fn active_entities(&self) -> Result<ActiveEntities, GlpiError> {
        let (value, reply) = self.get_json(Call::get("getActiveEntities")).await?;
        let active = value
            .get("active_entity")
            .ok_or_else(|| GlpiError::InvalidResponse {
                status: reply.status,
                detail: "no active_entity".into(),
            })?;
        let recursive = match active.get("active_entity_recursive") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(v) => lenient::int_from_value(v).unwrap_or(0) != 0,
            None => false,
        };
        Ok(ActiveEntities {
            id: active
                .get("id")
                .and_then(lenient::int_from_value)
                .unwrap_or(0),
            recursive,
            entity_ids: active
                .get("active_entities")
                .and_then(|a| a.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.get("id").and_then(lenient::int_from_value))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: i64, name: &str, complete: &str) -> DropdownItem {
        DropdownItem {
            id,
            name: name.into(),
            completename: complete.into(),
            is_incident: None,
            is_request: None,
        }
    }

    #[test]
    fn picks_complete_name_then_name() {
        let items = vec![
            item(1, "Chat", "Atendimento > Chat"),
            item(2, "Chat", "Vendas > Chat"),
        ];
        assert_eq!(pick_by_name(items.clone(), "vendas > chat"), Some(2));
        assert_eq!(pick_by_name(items.clone(), "Chat"), Some(1));
        assert_eq!(pick_by_name(items, "Outro"), None);
    }
}
