//! Entities (spec §13.1) and matching them by a custom field such as a CNPJ held by the
//! Fields plugin (§13.3).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::client::GlpiClient;
use crate::error::GlpiError;
use crate::lenient;
use crate::search::{Criterion, Link, SearchQuery, SearchType};
use crate::text::digits_only;

/// An entity as stored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Entity {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub completename: String,
    /// Parent entity; None for the root.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub entities_id: Option<i64>,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub level: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub comment: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub registration_number: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An entity to create.
#[derive(Debug, Clone, Default)]
pub struct NewEntity {
    pub name: String,
    /// Parent; None = root (0).
    pub parent_id: Option<i64>,
    pub comment: Option<String>,
    pub extra: Map<String, Value>,
}

/// How a search option value is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldMatch {
    /// Case-insensitive equality of the whole value.
    Exact,
    /// Equality of the digits only: `12.345.678/0001-90` = `12345678000190`.
    Digits,
}

/// An entity found by a field search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityHit {
    pub id: i64,
    /// Complete name ("Root entity > ACME Ltda").
    pub completename: String,
    /// The field value as stored.
    pub value: String,
}

/// The stored formats a digits-only document number may have. GLPI's `contains` is a plain
/// SQL LIKE on the text (a digits-only search does not find `12.345.678/0001-90`), so the
/// client asks for every likely spelling in one OR group: the digits, the Brazilian CNPJ /
/// CPF layout, and a LIKE pattern with `%` between digits (matches any separators on a
/// real GLPI, whose search does not escape `%`). Rows are then verified on their digits.
pub fn document_number_spellings(value: &str) -> Vec<String> {
    let d = digits_only(value);
    let mut out = vec![d.clone()];
    if d.len() == 14 {
        out.push(format!(
            "{}.{}.{}/{}-{}",
            &d[0..2],
            &d[2..5],
            &d[5..8],
            &d[8..12],
            &d[12..14]
        ));
    } else if d.len() == 11 {
        out.push(format!(
            "{}.{}.{}-{}",
            &d[0..3],
            &d[3..6],
            &d[6..9],
            &d[9..11]
        ));
    }
    let pattern: Vec<String> = d.chars().map(String::from).collect();
    out.push(pattern.join("%"));
    let trimmed = value.trim().to_owned();
    if !trimmed.is_empty() && !out.contains(&trimmed) {
        out.push(trimmed);
    }
    out.dedup();
    out
}

impl GlpiClient {
    /// Read an entity. An entity created by this session stays invisible (403) until the
    /// active entities are refreshed; [`GlpiClient::create_entity`] does that.
    pub async fn get_entity(&self, id: i64) -> Result<Entity, GlpiError> {
        self.get_item("Entity", id).await
    }

    /// Create an entity, then refresh the session's active entities so the new entity is
    /// visible (spec: a session does not see entities created after its login).
    pub async fn create_entity(&self, entity: &NewEntity) -> Result<i64, GlpiError> {
        let mut input = Map::new();
        input.insert("name".into(), json!(entity.name));
        input.insert("entities_id".into(), json!(entity.parent_id.unwrap_or(0)));
        if let Some(c) = &entity.comment {
            input.insert("comment".into(), json!(c));
        }
        for (k, v) in &entity.extra {
            input.insert(k.clone(), v.clone());
        }
        let id = self.create_item("Entity", &Value::Object(input)).await?;
        self.refresh_active_entities().await?;
        Ok(id)
    }

    /// Entities whose search option `option_id` (e.g. 76666 for the first Fields-plugin
    /// field) matches `value`. With [`FieldMatch::Digits`] any punctuation is ignored on both
    /// sides, so a CNPJ matches however it was typed or stored.
    pub async fn find_entities_by_field(
        &self,
        option_id: u32,
        value: &str,
        mode: FieldMatch,
    ) -> Result<Vec<EntityHit>, GlpiError> {
        let wanted = match mode {
            FieldMatch::Digits => digits_only(value),
            FieldMatch::Exact => value.trim().to_owned(),
        };
        if wanted.is_empty() {
            return Err(GlpiError::InvalidInput(format!(
                "nothing to search in {value:?}"
            )));
        }
        let spellings = match mode {
            FieldMatch::Digits => document_number_spellings(value),
            FieldMatch::Exact => vec![wanted.clone()],
        };
        let group = Criterion::Group {
            link: Link::And,
            criteria: spellings
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let c = Criterion::field(option_id, SearchType::Contains, s.clone());
                    if i == 0 { c } else { c.linked(Link::Or) }
                })
                .collect(),
        };
        let query = SearchQuery::new("Entity")
            .criterion(group)
            .display(&[1, option_id])
            .range(0, 199);
        let page = self.search(&query).await?;
        Ok(page
            .rows
            .iter()
            .filter_map(|row| {
                let id = row.id()?;
                let stored = row.text(option_id)?;
                let hit = match mode {
                    FieldMatch::Digits => digits_only(&stored) == wanted,
                    FieldMatch::Exact => stored.trim().eq_ignore_ascii_case(&wanted),
                };
                hit.then(|| EntityHit {
                    id,
                    completename: row.text(1).unwrap_or_default(),
                    value: stored,
                })
            })
            .collect())
    }

    /// Recompute the session's active entities so that entities created since the login
    /// become visible: the choice made with [`GlpiClient::change_active_entities`] is
    /// applied again; without one, the active entity GLPI chose at login is kept. GLPI's
    /// login makes the user's default entity active (with its sub-entities when the
    /// profile allows), or else all the profile's entities; asking for "all" instead
    /// would make the profile's first entity (often the root) the active one, where
    /// items created without an entity then land.
    pub async fn refresh_active_entities(&self) -> Result<(), GlpiError> {
        if let Some((entity, recursive)) = self.active_scope_entities().await {
            return self.change_active_entities(entity, recursive).await;
        }
        let current = self.active_entities().await?;
        if !current.recursive && current.entity_ids.len() > 1 {
            // Only "all" gives several entities without recursion.
            self.switch_entities(None, false).await
        } else {
            self.switch_entities(Some(current.id), current.recursive)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cnpj_spellings() {
        let s = document_number_spellings("12345678000190");
        assert!(s.contains(&"12345678000190".to_owned()));
        assert!(s.contains(&"12.345.678/0001-90".to_owned()));
        assert!(s.contains(&"1%2%3%4%5%6%7%8%0%0%0%1%9%0".to_owned()));
        let s = document_number_spellings("12.345.678/0001-90");
        assert_eq!(s[0], "12345678000190");
        let cpf = document_number_spellings("123.456.789-09");
        assert!(cpf.contains(&"123.456.789-09".to_owned()));
    }
}
