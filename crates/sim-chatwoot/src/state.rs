//! In-memory Chatwoot account: inboxes, contacts, agents, conversations,
//! messages. Ids start at the fixture scenario's numbers.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    Contact(u64),
    Agent(u64),
    /// The user that owns the API token (the bridge), an agent of the
    /// account but not one of `Account::agents`.
    TokenUser(u64),
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inbox {
    pub id: u64,
    pub name: String,
    /// e.g. `Channel::Whatsapp`, `Channel::Api`, `Channel::WebWidget`.
    pub channel_type: String,
    /// False for channels that refuse public replies (outside the window).
    pub can_reply: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: u64,
    pub name: String,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub identifier: Option<String>,
    pub custom_attributes: Map<String, Value>,
    pub additional_attributes: Map<String, Value>,
    pub blocked: bool,
    pub created_at: i64,
    pub last_activity_at: i64,
    pub updated_at: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: u64,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// The display id used in every API path.
    pub id: u64,
    pub inbox_id: u64,
    pub contact_id: u64,
    pub contact_inbox_id: u64,
    pub source_id: String,
    pub status: String,
    pub priority: Option<String>,
    pub custom_attributes: Map<String, Value>,
    pub labels: Vec<String>,
    pub assignee_id: Option<u64>,
    /// False once the channel's reply window closed.
    pub reply_window_open: bool,
    /// When set, public replies posted through the API are stored, then fail
    /// on the channel with this error (`content_attributes.external_error`,
    /// announced by a `message_updated`), as a provider's refusal does.
    pub delivery_error: Option<String>,
    pub created_at: i64,
    pub last_activity_at: i64,
    pub updated_at: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub id: u64,
    pub file_type: String,
    pub data_url: String,
    pub file_size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: u64,
    pub conversation_id: u64,
    pub content: String,
    /// 0 incoming, 1 outgoing, 2 activity, 3 template.
    pub message_type: u8,
    pub private: bool,
    pub content_type: String,
    pub content_attributes: Map<String, Value>,
    pub source_id: Option<String>,
    pub echo_id: Option<Value>,
    pub author: Author,
    pub attachments: Vec<Attachment>,
    pub created_at: f64,
}

impl Message {
    pub fn type_name(&self) -> &'static str {
        match self.message_type {
            0 => "incoming",
            1 => "outgoing",
            2 => "activity",
            _ => "template",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Account {
    pub id: u64,
    pub name: String,
    pub token_user: Agent,
    pub inboxes: BTreeMap<u64, Inbox>,
    pub contacts: BTreeMap<u64, Contact>,
    pub agents: BTreeMap<u64, Agent>,
    pub conversations: BTreeMap<u64, Conversation>,
    pub messages: BTreeMap<u64, Message>,
    next_inbox: u64,
    next_contact: u64,
    next_agent: u64,
    next_conversation: u64,
    next_contact_inbox: u64,
    next_message: u64,
    next_attachment: u64,
}

pub(crate) fn now() -> f64 {
    let now = OffsetDateTime::now_utc();
    now.unix_timestamp_nanos() as f64 / 1e9
}

/// ISO-8601 with milliseconds, like ActiveSupport JSON.
pub(crate) fn iso(seconds: f64) -> String {
    let nanos = (seconds * 1e9) as i128;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            )
        })
        .unwrap_or_default()
}

impl Account {
    pub fn new(id: u64, name: String, token_user: Agent) -> Self {
        Self {
            id,
            name,
            token_user,
            inboxes: BTreeMap::new(),
            contacts: BTreeMap::new(),
            agents: BTreeMap::new(),
            conversations: BTreeMap::new(),
            messages: BTreeMap::new(),
            next_inbox: 3,
            next_contact: 1201,
            next_agent: 7,
            next_conversation: 482,
            next_contact_inbox: 1187,
            next_message: 90311,
            next_attachment: 5521,
        }
    }

    pub fn add_inbox(&mut self, name: &str, channel_type: &str, can_reply: bool) -> u64 {
        let id = self.next_inbox;
        self.next_inbox += 1;
        self.inboxes.insert(
            id,
            Inbox {
                id,
                name: name.to_owned(),
                channel_type: channel_type.to_owned(),
                can_reply,
            },
        );
        id
    }

    pub fn add_agent(&mut self, name: &str, email: &str) -> u64 {
        let id = self.next_agent;
        self.next_agent += 1;
        self.agents.insert(
            id,
            Agent {
                id,
                name: name.to_owned(),
                email: email.to_owned(),
            },
        );
        id
    }

    pub fn agent_by_email(&self, email: &str) -> Option<u64> {
        self.agents
            .values()
            .find(|a| a.email.eq_ignore_ascii_case(email))
            .map(|a| a.id)
    }

    pub fn add_contact(
        &mut self,
        name: &str,
        email: Option<String>,
        phone_number: Option<String>,
        identifier: Option<String>,
    ) -> u64 {
        let id = self.next_contact;
        self.next_contact += 1;
        let t = now();
        self.contacts.insert(
            id,
            Contact {
                id,
                name: name.to_owned(),
                email,
                phone_number,
                identifier,
                custom_attributes: Map::new(),
                additional_attributes: Map::new(),
                blocked: false,
                created_at: t as i64,
                last_activity_at: t as i64,
                updated_at: t,
            },
        );
        id
    }

    pub fn add_conversation(&mut self, contact_id: u64, inbox_id: u64) -> u64 {
        let id = self.next_conversation;
        self.next_conversation += 1;
        let contact_inbox_id = self.next_contact_inbox;
        self.next_contact_inbox += 1;
        let source_id = self
            .contacts
            .get(&contact_id)
            .and_then(|c| c.phone_number.clone())
            .map(|p| p.trim_start_matches('+').to_owned())
            .unwrap_or_else(|| format!("contact-{contact_id}"));
        let t = now();
        let assignee_id = self.agents.keys().next().copied();
        self.conversations.insert(
            id,
            Conversation {
                id,
                inbox_id,
                contact_id,
                contact_inbox_id,
                source_id,
                status: "open".into(),
                priority: None,
                custom_attributes: Map::new(),
                labels: Vec::new(),
                assignee_id,
                reply_window_open: true,
                delivery_error: None,
                created_at: t as i64,
                last_activity_at: t as i64,
                updated_at: t,
            },
        );
        id
    }

    #[allow(clippy::too_many_arguments)]
    pub fn add_message(
        &mut self,
        conversation_id: u64,
        content: &str,
        message_type: u8,
        private: bool,
        author: Author,
        content_attributes: Map<String, Value>,
        source_id: Option<String>,
        echo_id: Option<Value>,
        attachment_urls: &[String],
    ) -> u64 {
        let id = self.next_message;
        self.next_message += 1;
        let t = now();
        let attachments = attachment_urls
            .iter()
            .map(|url| {
                let aid = self.next_attachment;
                self.next_attachment += 1;
                Attachment {
                    id: aid,
                    file_type: "image".into(),
                    data_url: url.clone(),
                    file_size: 1024,
                }
            })
            .collect();
        self.messages.insert(
            id,
            Message {
                id,
                conversation_id,
                content: content.to_owned(),
                message_type,
                private,
                content_type: "text".into(),
                content_attributes,
                source_id,
                echo_id,
                author,
                attachments,
                created_at: t,
            },
        );
        if let Some(conv) = self.conversations.get_mut(&conversation_id) {
            if !private {
                conv.last_activity_at = t as i64;
            }
            conv.updated_at = t;
        }
        id
    }

    pub fn conversation_messages(&self, conversation_id: u64) -> Vec<Message> {
        self.messages
            .values()
            .filter(|m| m.conversation_id == conversation_id)
            .cloned()
            .collect()
    }

    /// The latest public, non-activity message (what `messages[]` carries).
    pub fn last_public_message(&self, conversation_id: u64) -> Option<&Message> {
        self.messages
            .values()
            .rev()
            .find(|m| m.conversation_id == conversation_id && !m.private && m.message_type != 2)
    }

    pub fn can_reply(&self, conversation: &Conversation) -> bool {
        conversation.reply_window_open
            && self
                .inboxes
                .get(&conversation.inbox_id)
                .is_some_and(|i| i.can_reply)
    }
}

/// What Chatwoot's `Liquidable` concern does to an outgoing message (private
/// notes included) before storing it: `{{ … }}` outputs are rendered from
/// the conversation's drops and `{% … %}` tags are run, except inside
/// backtick spans. Only the contact drops are known here; an unknown
/// variable renders as nothing, as in Liquid. Text with an unclosed
/// delimiter is a syntax error, which Chatwoot answers by storing the
/// content as it came.
pub(crate) fn render_liquid(content: &str, contact: Option<&Contact>) -> String {
    let mut out = String::with_capacity(content.len());
    for (n, part) in content.split('`').enumerate() {
        if n > 0 {
            out.push('`');
        }
        // Odd parts sit between backticks: kept as they are.
        if n % 2 == 1 {
            out.push_str(part);
            continue;
        }
        match render_part(part, contact) {
            Some(rendered) => out.push_str(&rendered),
            None => return content.to_owned(),
        }
    }
    out
}

fn render_part(text: &str, contact: Option<&Contact>) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let next = [rest.find("{{"), rest.find("{%")]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = next else {
            out.push_str(rest);
            return Some(out);
        };
        out.push_str(&rest[..at]);
        let tag = rest[at..].starts_with("{%");
        let close = if tag { "%}" } else { "}}" };
        let end = rest[at + 2..].find(close)? + at + 2;
        if !tag {
            let name = rest[at + 2..end].trim();
            let value = match (name, contact) {
                ("contact.name", Some(c)) => c.name.clone(),
                ("contact.email", Some(c)) => c.email.clone().unwrap_or_default(),
                ("contact.phone_number", Some(c)) => c.phone_number.clone().unwrap_or_default(),
                _ => String::new(),
            };
            out.push_str(&value);
        }
        rest = &rest[end + 2..];
    }
}

#[cfg(test)]
mod liquid_tests {
    use super::*;

    #[test]
    fn outputs_tags_and_code_spans() {
        let contact = Contact {
            id: 1,
            name: "Maria".into(),
            email: None,
            phone_number: None,
            identifier: None,
            custom_attributes: Map::new(),
            additional_attributes: Map::new(),
            blocked: false,
            created_at: 0,
            last_activity_at: 0,
            updated_at: 0.0,
        };
        let render = |s: &str| render_liquid(s, Some(&contact));
        assert_eq!(render("Oi {{ contact.name }}!"), "Oi Maria!");
        assert_eq!(render("a {{ x.y }}b"), "a b");
        assert_eq!(render("a {% if x %}b"), "a b");
        assert_eq!(render("use `{{ raw }}` here"), "use `{{ raw }}` here");
        assert_eq!(render("broken {{ here"), "broken {{ here");
        assert_eq!(render("{\u{200B}{ inert }}"), "{\u{200B}{ inert }}");
    }
}
