//! Typed UserRequest helpers: create, read, update, lifecycle stimuli.

use serde_json::{Map, Value, json};

use crate::case_log::CaseLogEntry;
use crate::client::ItopClient;
use crate::error::ItopError;
use crate::response::{ItopObject, Key};

/// Fields read for a `UserRequest`.
pub const USER_REQUEST_FIELDS: &str = "id,ref,title,description,status,org_id,caller_id,team_id,agent_id,origin,impact,urgency,priority,\
service_id,start_date,last_update,assignment_date,resolution_date,close_date,resolution_code,solution,pending_reason,\
user_satisfaction,user_comment,public_log,private_log";

/// A UserRequest as read from iTop.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRequest {
    pub id: u64,
    /// `R-000001`.
    pub reference: String,
    pub title: String,
    /// Stored HTML.
    pub description: String,
    /// Status code (`new`, `assigned`, `pending`, `resolved`, `closed`, …).
    pub status: String,
    pub org_id: Option<u64>,
    pub caller_id: Option<u64>,
    pub team_id: Option<u64>,
    pub agent_id: Option<u64>,
    pub service_id: Option<u64>,
    pub origin: String,
    pub impact: String,
    pub urgency: String,
    pub priority: String,
    pub start_date: String,
    pub last_update: String,
    pub assignment_date: String,
    pub resolution_date: String,
    pub close_date: String,
    pub resolution_code: String,
    pub solution: String,
    pub pending_reason: String,
    pub public_log: Vec<CaseLogEntry>,
    pub private_log: Vec<CaseLogEntry>,
}

impl UserRequest {
    pub fn from_object(o: &ItopObject) -> UserRequest {
        UserRequest {
            id: o.key,
            reference: o.text("ref"),
            title: o.text("title"),
            description: o.text("description"),
            status: o.text("status"),
            org_id: o.ext_key("org_id"),
            caller_id: o.ext_key("caller_id"),
            team_id: o.ext_key("team_id"),
            agent_id: o.ext_key("agent_id"),
            service_id: o.ext_key("service_id"),
            origin: o.text("origin"),
            impact: o.text("impact"),
            urgency: o.text("urgency"),
            priority: o.text("priority"),
            start_date: o.text("start_date"),
            last_update: o.text("last_update"),
            assignment_date: o.text("assignment_date"),
            resolution_date: o.text("resolution_date"),
            close_date: o.text("close_date"),
            resolution_code: o.text("resolution_code"),
            solution: o.text("solution"),
            pending_reason: o.text("pending_reason"),
            public_log: CaseLogEntry::parse_log(o.fields.get("public_log")),
            private_log: CaseLogEntry::parse_log(o.fields.get("private_log")),
        }
    }
}

/// A UserRequest to create. External keys are `Key`s: an id, an OQL query or
/// criteria (e.g. `Key::criteria([("email", "a@b.c")])`); each must match one object.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUserRequest {
    pub org: Key,
    pub caller: Option<Key>,
    pub title: String,
    /// HTML (plain text is wrapped in `<p>` by iTop).
    pub description: String,
    /// chat, in_person, mail, phone, portal.
    pub origin: Option<String>,
    /// 1 department, 2 group, 3 person.
    pub impact: Option<String>,
    /// 1 (critical) … 4 (low).
    pub urgency: Option<String>,
    pub team: Option<Key>,
    pub agent: Option<Key>,
    pub service: Option<Key>,
    /// Any other attribute (e.g. a `private_log` with `add_item`).
    pub extra: Map<String, Value>,
}

impl NewUserRequest {
    pub fn new(
        org: Key,
        title: impl Into<String>,
        description: impl Into<String>,
    ) -> NewUserRequest {
        NewUserRequest {
            org,
            caller: None,
            title: title.into(),
            description: description.into(),
            origin: None,
            impact: None,
            urgency: None,
            team: None,
            agent: None,
            service: None,
            extra: Map::new(),
        }
    }

    pub fn to_fields(&self) -> Value {
        let mut f = self.extra.clone();
        f.insert("org_id".into(), self.org.to_value());
        f.insert("title".into(), Value::String(self.title.clone()));
        f.insert(
            "description".into(),
            Value::String(self.description.clone()),
        );
        let keys = [
            ("caller_id", &self.caller),
            ("team_id", &self.team),
            ("agent_id", &self.agent),
            ("service_id", &self.service),
        ];
        for (name, key) in keys {
            if let Some(k) = key {
                f.insert(name.into(), k.to_value());
            }
        }
        for (name, v) in [
            ("origin", &self.origin),
            ("impact", &self.impact),
            ("urgency", &self.urgency),
        ] {
            if let Some(v) = v {
                f.insert(name.into(), Value::String(v.clone()));
            }
        }
        Value::Object(f)
    }
}

/// A lifecycle stimulus with the fields its target state requires.
#[derive(Debug, Clone, PartialEq)]
pub enum Stimulus {
    /// new / escalated / approved / pending → assigned. Always send team and agent:
    /// iTop does not enforce them, but an assigned ticket without them is useless.
    Assign { team_id: u64, agent_id: u64 },
    /// assigned → assigned (other team/agent).
    Reassign { team_id: u64, agent_id: u64 },
    /// assigned → pending (reason required).
    Pending { reason: String },
    /// assigned → resolved (solution required).
    Resolve {
        solution: String,
        resolution_code: Option<String>,
        service_id: Option<u64>,
    },
    /// resolved → assigned (rejected → new).
    Reopen,
    /// resolved → closed.
    Close {
        user_satisfaction: Option<String>,
        user_comment: Option<String>,
    },
    /// Any other stimulus code with its fields.
    Other {
        code: String,
        fields: Map<String, Value>,
    },
}

impl Stimulus {
    pub fn code(&self) -> &str {
        match self {
            Stimulus::Assign { .. } => "ev_assign",
            Stimulus::Reassign { .. } => "ev_reassign",
            Stimulus::Pending { .. } => "ev_pending",
            Stimulus::Resolve { .. } => "ev_resolve",
            Stimulus::Reopen => "ev_reopen",
            Stimulus::Close { .. } => "ev_close",
            Stimulus::Other { code, .. } => code,
        }
    }

    pub fn fields(&self) -> Value {
        match self {
            Stimulus::Assign { team_id, agent_id } | Stimulus::Reassign { team_id, agent_id } => {
                json!({"team_id": team_id, "agent_id": agent_id})
            }
            Stimulus::Pending { reason } => json!({ "pending_reason": reason }),
            Stimulus::Resolve {
                solution,
                resolution_code,
                service_id,
            } => {
                let mut f = Map::new();
                f.insert("solution".into(), Value::String(solution.clone()));
                if let Some(c) = resolution_code {
                    f.insert("resolution_code".into(), Value::String(c.clone()));
                }
                if let Some(s) = service_id {
                    f.insert("service_id".into(), Value::from(*s));
                }
                Value::Object(f)
            }
            Stimulus::Reopen => json!({}),
            Stimulus::Close {
                user_satisfaction,
                user_comment,
            } => {
                let mut f = Map::new();
                if let Some(s) = user_satisfaction {
                    f.insert("user_satisfaction".into(), Value::String(s.clone()));
                }
                if let Some(c) = user_comment {
                    f.insert("user_comment".into(), Value::String(c.clone()));
                }
                Value::Object(f)
            }
            Stimulus::Other { fields, .. } => Value::Object(fields.clone()),
        }
    }
}

impl ItopClient {
    pub async fn create_user_request(
        &self,
        new: &NewUserRequest,
        comment: &str,
    ) -> Result<UserRequest, ItopError> {
        let o = self
            .create("UserRequest", new.to_fields(), comment, USER_REQUEST_FIELDS)
            .await?;
        Ok(UserRequest::from_object(&o))
    }

    /// None if no UserRequest has this id.
    pub async fn user_request(&self, id: u64) -> Result<Option<UserRequest>, ItopError> {
        Ok(self
            .get_one("UserRequest", id, USER_REQUEST_FIELDS)
            .await?
            .as_ref()
            .map(UserRequest::from_object))
    }

    /// UserRequests matching a key (OQL, criteria or id), in iTop's order.
    pub async fn find_user_requests(
        &self,
        key: impl Into<Key>,
    ) -> Result<Vec<UserRequest>, ItopError> {
        Ok(self
            .get("UserRequest", key, USER_REQUEST_FIELDS)
            .await?
            .iter()
            .map(UserRequest::from_object)
            .collect())
    }

    pub async fn update_user_request(
        &self,
        id: u64,
        fields: Value,
        comment: &str,
    ) -> Result<UserRequest, ItopError> {
        let o = self
            .update("UserRequest", id, fields, comment, USER_REQUEST_FIELDS)
            .await?;
        Ok(UserRequest::from_object(&o))
    }

    pub async fn apply_user_request_stimulus(
        &self,
        id: u64,
        stimulus: &Stimulus,
        comment: &str,
    ) -> Result<UserRequest, ItopError> {
        let o = self
            .apply_stimulus(
                "UserRequest",
                id,
                stimulus.code(),
                stimulus.fields(),
                comment,
                USER_REQUEST_FIELDS,
            )
            .await?;
        Ok(UserRequest::from_object(&o))
    }
}
