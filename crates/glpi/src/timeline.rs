//! Ticket timeline: followups (spec §9), solutions (§10), tasks (§11).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::client::GlpiClient;
use crate::error::GlpiError;
use crate::lenient;

/// A followup to add to a ticket.
#[derive(Debug, Clone, Default)]
pub struct NewFollowup {
    pub ticket_id: i64,
    /// HTML or plain text, sent raw.
    pub content: String,
    pub is_private: bool,
    /// GLPI does not default it on API adds (spec §17 trap 16): send it.
    pub request_type_id: Option<i64>,
    /// Record the followup as written by this user (`users_id`), e.g. the requester.
    pub author_id: Option<i64>,
    /// `_no_reopen`: do not reopen a waiting/solved ticket (history sync).
    pub no_reopen: bool,
}

/// A followup as stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Followup {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub itemtype: String,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub items_id: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub users_id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub content: String,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_private: bool,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub requesttypes_id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub date: String,
}

/// A solution to add (moves the ticket to solved, or closed when the entity closes at once).
#[derive(Debug, Clone, Default)]
pub struct NewSolution {
    pub ticket_id: i64,
    pub content: String,
    pub solution_type_id: Option<i64>,
}

/// A solution as stored. `status`: 2 waiting approval, 3 accepted, 4 refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Solution {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub items_id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub content: String,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub status: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub users_id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub date_creation: String,
}

/// A task to add. `state`: 0 information, 1 to do, 2 done.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub ticket_id: i64,
    pub content: String,
    pub is_private: bool,
    pub state: Option<i64>,
    /// Time spent, seconds (`actiontime`).
    pub duration_secs: Option<u64>,
    /// Technician in charge (`users_id_tech`).
    pub technician_id: Option<i64>,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Task {
    #[serde(deserialize_with = "lenient::i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub tickets_id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub content: String,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_private: bool,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub state: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub actiontime: i64,
    #[serde(default, deserialize_with = "lenient::i64")]
    pub users_id_tech: i64,
}

pub(crate) fn followup_input(f: &NewFollowup) -> Result<Value, GlpiError> {
    if f.content.trim().is_empty() {
        return Err(GlpiError::InvalidInput(
            "GLPI refuses a followup without content".into(),
        ));
    }
    let mut input = Map::new();
    // Sub-item POSTs do not inject the parent: always send itemtype/items_id (trap 22).
    input.insert("itemtype".into(), json!("Ticket"));
    input.insert("items_id".into(), json!(f.ticket_id));
    input.insert("content".into(), json!(f.content));
    input.insert("is_private".into(), json!(i64::from(f.is_private)));
    if let Some(r) = f.request_type_id {
        input.insert("requesttypes_id".into(), json!(r));
    }
    if let Some(u) = f.author_id {
        input.insert("users_id".into(), json!(u));
    }
    if f.no_reopen {
        input.insert("_no_reopen".into(), json!(1));
    }
    Ok(Value::Object(input))
}

fn by_id<T>(mut items: Vec<T>, id: impl Fn(&T) -> i64) -> Vec<T> {
    items.sort_by_key(|i| id(i));
    items
}

impl GlpiClient {
    /// Add a followup; returns its id.
    pub async fn add_followup(&self, followup: &NewFollowup) -> Result<i64, GlpiError> {
        let input = followup_input(followup)?;
        self.create_item("ITILFollowup", &input).await
    }

    /// Followups of a ticket, oldest first.
    pub async fn followups(&self, ticket_id: i64) -> Result<Vec<Followup>, GlpiError> {
        let items = self
            .list_sub_items("Ticket", ticket_id, "ITILFollowup")
            .await?;
        Ok(by_id(items, |f: &Followup| f.id))
    }

    /// Add a solution; returns its id.
    pub async fn add_solution(&self, solution: &NewSolution) -> Result<i64, GlpiError> {
        let mut input = json!({
            "itemtype": "Ticket",
            "items_id": solution.ticket_id,
            "content": solution.content,
        });
        if let Some(t) = solution.solution_type_id {
            input["solutiontypes_id"] = json!(t);
        }
        self.create_item("ITILSolution", &input).await
    }

    /// Solutions of a ticket, oldest first.
    pub async fn solutions(&self, ticket_id: i64) -> Result<Vec<Solution>, GlpiError> {
        let items = self
            .list_sub_items("Ticket", ticket_id, "ITILSolution")
            .await?;
        Ok(by_id(items, |s: &Solution| s.id))
    }

    /// Add a task; returns its id.
    pub async fn add_task(&self, task: &NewTask) -> Result<i64, GlpiError> {
        let mut input = json!({
            "tickets_id": task.ticket_id,
            "content": task.content,
            "is_private": i64::from(task.is_private),
        });
        if let Some(s) = task.state {
            input["state"] = json!(s);
        }
        if let Some(d) = task.duration_secs {
            input["actiontime"] = json!(d);
        }
        if let Some(t) = task.technician_id {
            input["users_id_tech"] = json!(t);
        }
        self.create_item("TicketTask", &input).await
    }

    /// Tasks of a ticket, oldest first.
    pub async fn tasks(&self, ticket_id: i64) -> Result<Vec<Task>, GlpiError> {
        let items = self
            .list_sub_items("Ticket", ticket_id, "TicketTask")
            .await?;
        Ok(by_id(items, |t: &Task| t.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followup_on_behalf_of_requester() {
        let input = followup_input(&NewFollowup {
            ticket_id: 1,
            content: "Mensagem do cliente via chat".into(),
            request_type_id: Some(7),
            author_id: Some(7),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            input,
            json!({"itemtype":"Ticket","items_id":1,"content":"Mensagem do cliente via chat","is_private":0,"requesttypes_id":7,"users_id":7})
        );
    }

    #[test]
    fn empty_followup_is_refused_locally() {
        let f = NewFollowup {
            ticket_id: 1,
            content: "  ".into(),
            ..Default::default()
        };
        assert!(matches!(
            followup_input(&f),
            Err(GlpiError::InvalidInput(_))
        ));
    }
}
