//! The messaging flow: what the routes call on the request path, and the
//! three job handlers (`messaging.buffer`, `messaging.flush`,
//! `messaging.callback`).

use crate::attachments;
use crate::callback;
use crate::channel::Channel;
use crate::content;
use crate::error::MessagingError;
use crate::message::{ChannelMessage, MessageRules, Rejection};
use crate::state::{self, ConversationState, PreviousTicket, TicketRef};
use config::{Config, SourceConfig};
use engine::{Engine, Handler, JobError, Waker};
use flows::Targets;
use flows::claims::PersonClaims;
use flows::helpdesk::{
    Attachment, NewFollowup, NewTicket, Requester, Ticket, TicketKind, TicketStatus,
};
use flows::identity::{
    Caller, LookupOrder, OrganisationChoice, OrganisationHint, RequesterPolicy, UnknownTaxId,
    resolve_requester_in_order,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use store::{Job, LinkState, NewAudit, NewJob, NewLink, Store};

/// Appends a message to its conversation (or adds it as a followup).
pub const BUFFER_JOB: &str = "messaging.buffer";
/// Turns a conversation's buffered burst into one ticket.
pub const FLUSH_JOB: &str = "messaging.flush";
/// Posts the ticket number to the source's callback URL.
pub const CALLBACK_JOB: &str = "messaging.callback";
/// Queue of callback deliveries (apart from the target's queue, so a slow
/// bot never holds GLPI work back).
pub const CALLBACK_QUEUE: &str = "messaging-callback";
/// kv namespace of the messages whose answer named no ticket (the callback
/// names it if they become followups).
const UNNAMED_NAMESPACE: &str = "messaging.unnamed";
/// kv namespace of the requester last resolved for a phone (the open-tickets
/// route finds a requester found by email, or email-only, by the phone).
const REQUESTER_NAMESPACE: &str = "messaging.requester";
/// Link kind: conversation burst → ticket.
pub const TICKET_LINK: &str = "messaging.ticket";
/// Link kind: message → followup.
pub const FOLLOWUP_LINK: &str = "messaging.followup";
/// Attempts of a callback delivery (with the engine's capped backoff this
/// keeps trying for hours).
const CALLBACK_ATTEMPTS: i32 = 60;
/// Attempts after which an unreachable attachment URL is given up (the
/// ticket is created without it, with a note).
const ATTACHMENT_ATTEMPTS: i32 = 3;
/// Most messages in one burst: the one that fills it closes it at once (a
/// flood, or a bot relaying a whole history, makes tickets of this size
/// rather than one huge one, and the stored buffer stays small).
pub const MAX_BURST: usize = 50;
/// Least attempts of a flush job (with the engine's capped backoff, hours):
/// its messages wait in the buffer meanwhile, so a long help desk outage only
/// delays them.
const FLUSH_ATTEMPTS: i32 = 60;
/// Timeout of every outgoing HTTP call of the flow (attachments, callbacks).
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// What a handoff came to ([`Messaging::handoff_outcome`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffOutcome {
    /// The ticket the handoff made of the messages.
    Created(TicketRef),
    /// Nothing needed a new ticket (nothing was waiting, or the messages
    /// are followups): the conversation's ticket.
    Existing(TicketRef),
    /// Its job is still on its way to the help desk, with no ticket yet:
    /// the `ticket.created` callback names it.
    Pending,
    /// Its job gave up; the messages wait in the buffer for the
    /// conversation's next message or a retry of the job.
    Failed { job_id: i64, reason: String },
    /// Nothing was handed off (the messages were a bot's stale session) and
    /// the conversation has no ticket.
    Nothing,
}

#[derive(Debug, Serialize, Deserialize)]
struct BufferPayload {
    source: String,
    message: ChannelMessage,
}

#[derive(Debug, Serialize, Deserialize)]
struct FlushPayload {
    source: String,
    conversation_id: String,
    /// `window` or `handoff`.
    reason: String,
}

/// The requester last resolved for a phone (kv, [`REQUESTER_NAMESPACE`]):
/// the ticket's requester and the email of the person behind it. A GLPI
/// contact cannot be a requester, so its tickets ask in its email: the
/// email is what finds them again.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct RememberedRequester {
    #[serde(flatten)]
    requester: Requester,
    /// Absent in entries stored by earlier versions (a bare [`Requester`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    person_email: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CallbackPayload {
    source: String,
    webhook_id: String,
    /// The exact bytes to post (UTF-8 JSON).
    body: String,
}

struct Inner {
    store: Store,
    channels: BTreeMap<String, Channel>,
    /// Callbacks, and attachments of sources that allow private hosts.
    http: reqwest::Client,
    /// Attachments of the other sources: names resolve to public addresses
    /// only.
    public_http: reqwest::Client,
    max_attempts: i32,
}

/// The messaging flow for every `kind = "messaging"` source. Cheap to clone.
#[derive(Clone)]
pub struct Messaging {
    inner: Arc<Inner>,
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..10])
}

/// Jobs of one conversation run one at a time, in order.
pub fn ordering_key(source: &str, conversation: &str) -> String {
    format!("messaging:{source}:{conversation}")
}

/// Debounce key of a conversation's pending flush.
fn flush_key(source: &str, conversation: &str) -> String {
    format!("messaging.flush:{source}:{conversation}")
}

/// kv key of a message whose answer named no ticket.
fn unnamed_key(source: &str, conversation: &str, message_id: &str) -> String {
    format!(
        "{source}/{}:{conversation}/{message_id}",
        conversation.len()
    )
}

fn source_system(source: &str) -> String {
    format!("messaging:{source}")
}

fn payload<T: for<'de> Deserialize<'de>>(job: &Job) -> Result<T, JobError> {
    serde_json::from_value(job.payload.clone())
        .map_err(|e| JobError::permanent(format!("job {} has an unreadable payload: {e}", job.id)))
}

impl Messaging {
    /// Every messaging source of `config`, each on its target from `targets`.
    pub fn from_config(
        config: &Config,
        targets: &Targets,
        store: Store,
    ) -> Result<Messaging, MessagingError> {
        let mut channels = BTreeMap::new();
        for (name, source) in &config.sources {
            let SourceConfig::Messaging(settings) = source else {
                continue;
            };
            let helpdesk = targets.helpdesk(&settings.target).ok_or_else(|| {
                MessagingError::UnknownTarget {
                    source_name: name.clone(),
                    target: settings.target.clone(),
                }
            })?;
            channels.insert(
                name.clone(),
                Channel::new(name, settings.clone(), helpdesk)?,
            );
        }
        let http = attachments::http_client(false, HTTP_TIMEOUT)
            .map_err(|e| MessagingError::Client(e.to_string()))?;
        let public_http = attachments::http_client(true, HTTP_TIMEOUT)
            .map_err(|e| MessagingError::Client(e.to_string()))?;
        Ok(Messaging {
            inner: Arc::new(Inner {
                store,
                channels,
                http,
                public_http,
                max_attempts: i32::try_from(config.engine.max_attempts).unwrap_or(i32::MAX),
            }),
        })
    }

    /// True when at least one messaging source is configured.
    pub fn is_empty(&self) -> bool {
        self.inner.channels.is_empty()
    }

    /// Registers the three job handlers on `engine`.
    pub fn register(&self, engine: &mut Engine) {
        let waker = engine.waker();
        for kind in [BUFFER_JOB, FLUSH_JOB, CALLBACK_JOB] {
            engine.register(
                kind,
                Arc::new(JobRunner {
                    flow: self.clone(),
                    waker: waker.clone(),
                }),
            );
        }
    }

    /// The configured source, if it is a messaging source.
    pub fn channel(&self, source: &str) -> Option<&Channel> {
        self.inner.channels.get(source)
    }

    fn require(&self, source: &str) -> Result<&Channel, MessagingError> {
        self.channel(source)
            .ok_or_else(|| MessagingError::UnknownSource(source.to_owned()))
    }

    /// Reads and checks one message body for `source` (no network call).
    pub fn parse_message(
        &self,
        source: &str,
        body: &Value,
        received_at: i64,
    ) -> Result<ChannelMessage, Rejection> {
        let Some(channel) = self.channel(source) else {
            return Err(Rejection::Invalid(vec![(
                String::new(),
                format!("no messaging source named {source:?}"),
            )]));
        };
        let rules = MessageRules {
            default_country: channel.settings.default_country.as_deref(),
            max_attachment_bytes: channel.settings.max_attachment_bytes,
        };
        ChannelMessage::parse(body, &rules, received_at)
    }

    /// The job that files an accepted message into its conversation.
    pub fn message_job(
        &self,
        source: &str,
        message: &ChannelMessage,
    ) -> Result<NewJob, MessagingError> {
        let channel = self.require(source)?;
        let payload = serde_json::to_value(BufferPayload {
            source: source.to_owned(),
            message: message.clone(),
        })
        .map_err(|e| MessagingError::Corrupt {
            what: "message",
            reason: e.to_string(),
        })?;
        Ok(NewJob::new(
            channel.target(),
            BUFFER_JOB,
            ordering_key(source, &message.conversation_id),
            payload,
        )
        .max_attempts(self.inner.max_attempts))
    }

    /// The job that turns the conversation's buffer into a ticket now. It
    /// runs after every message accepted before it.
    pub fn handoff_job(&self, source: &str, conversation: &str) -> Result<NewJob, MessagingError> {
        let channel = self.require(source)?;
        Ok(NewJob::new(
            channel.target(),
            FLUSH_JOB,
            ordering_key(source, conversation),
            json!({"source": source, "conversation_id": conversation, "reason": "handoff"}),
        )
        .max_attempts(self.flush_attempts()))
    }

    /// How long the handoff route may wait for the ticket.
    pub fn handoff_wait(&self, source: &str) -> Duration {
        self.channel(source)
            .map_or(Duration::ZERO, |c| c.settings.handoff_wait)
    }

    /// The ticket the conversation's messages currently go to, when the
    /// bridge knows it and nothing is waiting to be merged (store read only).
    pub async fn current_ticket(
        &self,
        source: &str,
        conversation: &str,
    ) -> Result<Option<TicketRef>, MessagingError> {
        let channel = self.require(source)?;
        if !channel.settings.followups {
            // Every burst opens its own ticket: no message goes to this one.
            return Ok(None);
        }
        let state = state::load(&self.inner.store, source, conversation).await?;
        // With followups on, buffered messages of a conversation with a
        // ticket are followups waiting for the help desk: they go to it if
        // it is still open.
        let Some(ticket) = state.ticket else {
            return Ok(None);
        };
        let status = match channel.cached_status(ticket.id).await {
            Some(status) => Some(status),
            // Not read lately: ask the target, briefly. A ticket closed (or
            // gone) since would send the message to a new ticket, so naming
            // the old one would be wrong; when the target does not answer in
            // time, no ticket is named (the callback carries the number).
            None => tokio::time::timeout(
                channel.settings.status_wait,
                channel.ticket_status(ticket.id),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .flatten(),
        };
        // A solved ticket takes the message too (it reopens).
        Ok(status
            .filter(|s| s.is_open() || *s == TicketStatus::Solved)
            .map(|_| ticket))
    }

    /// Whether the bridge knows this conversation: messages buffered or
    /// still waiting to be, or a ticket (store reads only).
    pub async fn knows_conversation(
        &self,
        source: &str,
        conversation: &str,
    ) -> Result<bool, MessagingError> {
        self.require(source)?;
        // The message's buffer job first, then the state: a job that moves
        // on between these reads (pending, running, done) has stored the
        // message in the state by the time the state is read. Read the other
        // way round, a job finishing in between was seen nowhere.
        for status in [store::JobStatus::Pending, store::JobStatus::Running] {
            let waiting = self
                .inner
                .store
                .jobs(&store::JobFilter {
                    status: Some(status),
                    kind: Some(BUFFER_JOB.to_owned()),
                    ordering_key: Some(ordering_key(source, conversation)),
                    queue: None,
                    limit: Some(1),
                })
                .await?;
            if !waiting.is_empty() {
                return Ok(true);
            }
        }
        let state = state::load(&self.inner.store, source, conversation).await?;
        Ok(state.ticket.is_some() || !state.buffer.is_empty())
    }

    /// The handoff job accepted with inbox row `inbox_id`, if the store still
    /// has it (succeeded jobs are purged after a while).
    pub async fn handoff_job_of(
        &self,
        source: &str,
        conversation: &str,
        inbox_id: i64,
    ) -> Result<Option<Job>, MessagingError> {
        self.require(source)?;
        let jobs = self
            .inner
            .store
            .jobs(&store::JobFilter {
                status: None,
                kind: Some(FLUSH_JOB.to_owned()),
                ordering_key: Some(ordering_key(source, conversation)),
                queue: None,
                limit: Some(1000),
            })
            .await?;
        Ok(jobs.into_iter().find(|j| j.inbox_id == Some(inbox_id)))
    }

    /// What a handoff came to: the conversation's generation was `since`
    /// when it was accepted, and `job` is its job as it stands now (`None`
    /// when the store no longer has it: it finished).
    pub async fn handoff_outcome(
        &self,
        source: &str,
        conversation: &str,
        since: u64,
        job: Option<&Job>,
    ) -> Result<HandoffOutcome, MessagingError> {
        self.require(source)?;
        let state = state::load(&self.inner.store, source, conversation).await?;
        match state.ticket {
            // The ticket it made (whether or not later messages go to it).
            Some(ticket) if ticket.generation >= since => {
                return Ok(HandoffOutcome::Created(ticket));
            }
            _ => {}
        }
        match job {
            Some(job) if job.status == store::JobStatus::Dead => {
                // Died before its attempts ran out: an error no retry mends
                // (its words are the flow's). Else the help desk failed
                // through every attempt, whose details are for the logs.
                let reason = match &job.last_error {
                    Some(error) if job.attempts < job.max_attempts => error.clone(),
                    _ => "the help desk did not answer through every attempt".to_owned(),
                };
                Ok(HandoffOutcome::Failed {
                    job_id: job.id,
                    reason,
                })
            }
            Some(job)
                if matches!(
                    job.status,
                    store::JobStatus::Pending | store::JobStatus::Running
                ) =>
            {
                // On its way: with followups on, the messages go to the open
                // ticket; else the ticket.created callback names the new one.
                Ok(match self.current_ticket(source, conversation).await? {
                    Some(ticket) => HandoffOutcome::Existing(ticket),
                    None => HandoffOutcome::Pending,
                })
            }
            // Done without a ticket of its own: nothing needed one (nothing
            // was waiting, the messages followed the ticket, or they were a
            // stale bot session).
            _ => Ok(match state.ticket {
                Some(ticket) => HandoffOutcome::Existing(ticket),
                None => HandoffOutcome::Nothing,
            }),
        }
    }

    /// The open tickets of the person with this phone number and/or email
    /// (target calls). A phone the help desk does not know still finds the
    /// requester the bridge last resolved for it (found by email, or an
    /// email-only requester); an email also finds the tickets it asked for
    /// without an account. Newest (last changed) first.
    pub async fn open_tickets(
        &self,
        source: &str,
        phone: Option<&str>,
        email: Option<&str>,
    ) -> Result<Vec<Ticket>, MessagingError> {
        let channel = self.require(source)?;
        let mut person = None;
        let mut emails: Vec<String> = email.map(str::to_owned).into_iter().collect();
        if let Some(phone) = phone {
            let e164 = flows::identity::normalize_phone(
                phone,
                channel.settings.default_country.as_deref(),
            )?;
            let query = flows::helpdesk::PersonQuery {
                email: None,
                phone: Some(e164.clone()),
            };
            person = channel.helpdesk.find_person(&query).await?;
            if person.is_none() {
                match self.remembered_requester(source, &e164).await? {
                    Some(RememberedRequester {
                        requester: Requester::Person { id, kind },
                        person_email,
                    }) => {
                        person = Some(flows::helpdesk::Person {
                            id,
                            kind,
                            name: String::new(),
                            email: person_email,
                            organisation: None,
                        });
                    }
                    Some(RememberedRequester {
                        requester: Requester::EmailOnly { email, .. },
                        ..
                    }) => emails.push(email),
                    None => {}
                }
            }
        }
        if person.is_none()
            && let Some(email) = email
        {
            let query = flows::helpdesk::PersonQuery {
                email: Some(email.to_owned()),
                phone: None,
            };
            person = channel.helpdesk.find_person(&query).await?;
        }
        let mut tickets = match &person {
            Some(person) => channel.helpdesk.tickets_of(person, true).await?,
            None => Vec::new(),
        };
        // The person's address asks for what it asked without an account:
        // a GLPI contact's tickets all do (GLPI takes no contact as a
        // requester), as the intake API lists them.
        emails.extend(person.and_then(|p| p.email));
        emails.sort_unstable_by_key(|e| e.to_ascii_lowercase());
        emails.dedup_by_key(|e| e.to_ascii_lowercase());
        for email in emails {
            for ticket in channel.helpdesk.tickets_of_email(&email, true).await? {
                if !tickets.iter().any(|t| t.id == ticket.id) {
                    tickets.push(ticket);
                }
            }
        }
        flows::helpdesk::sort_newest_first(&mut tickets);
        Ok(tickets)
    }

    /// The requester the bridge resolved last for this phone (E.164).
    async fn remembered_requester(
        &self,
        source: &str,
        phone: &str,
    ) -> Result<Option<RememberedRequester>, MessagingError> {
        let stored = self
            .inner
            .store
            .kv_get(REQUESTER_NAMESPACE, &format!("{source}/{phone}"))
            .await?;
        Ok(stored.and_then(|v| serde_json::from_value(v).ok()))
    }

    /// The route answered `"ticket": null` for `message` (no open ticket
    /// known, or the help desk too slow to say): if the message becomes a
    /// followup, the callback (`ticket.updated`) names the ticket, as the
    /// answer could not.
    pub async fn note_unnamed(
        &self,
        source: &str,
        message: &ChannelMessage,
    ) -> Result<(), MessagingError> {
        let channel = self.require(source)?;
        if !channel.settings.followups || !has_callback(channel) {
            return Ok(());
        }
        let store = &self.inner.store;
        // Only a conversation with a ticket, or with a burst on its way to
        // one, has a ticket this message can follow (a handoff-mode bot
        // session may be dropped unflushed: it leaves no note behind).
        let state = state::load(store, source, &message.conversation_id).await?;
        let may_follow = state.ticket.is_some()
            || (channel.opens_on_first_message() && !state.buffer.is_empty());
        if !may_follow {
            return Ok(());
        }
        let key = unnamed_key(source, &message.conversation_id, &message.message_id);
        store
            .kv_put(UNNAMED_NAMESPACE, &key, &json!({"at": store::now_ms()}))
            .await?;
        // The flush may have added the followup while the route waited: it
        // found no note then, so the callback goes from here.
        let source_id = format!("{}/{}", message.conversation_id, message.message_id);
        let link = store
            .link(
                FOLLOWUP_LINK,
                &source_system(source),
                &source_id,
                channel.target(),
            )
            .await?;
        if let Some(link) = link
            && link.state == LinkState::Linked
            && let Some(ticket) = link.data.get("ticket").and_then(Value::as_i64)
        {
            // The reference the link keeps, else the conversation's (links
            // stored by earlier versions have none).
            let reference = link
                .data
                .get("ref")
                .and_then(Value::as_str)
                .or(state
                    .ticket
                    .as_ref()
                    .filter(|t| t.id == ticket)
                    .map(|t| t.reference.as_str()))
                .unwrap_or_default();
            self.followup_callback(
                channel,
                &message.conversation_id,
                &message.message_id,
                ticket,
                reference,
            )
            .await?;
        }
        Ok(())
    }

    /// Enqueues the `ticket.updated` callback of a followup whose message's
    /// answer named no ticket (and forgets that it did); nothing otherwise.
    /// `reference` is the ticket's as the bridge knows it; only when it is
    /// empty (a state stored by an earlier version) is the target asked.
    async fn followup_callback(
        &self,
        channel: &Channel,
        conversation: &str,
        message_id: &str,
        ticket: i64,
        reference: &str,
    ) -> Result<bool, MessagingError> {
        let store = &self.inner.store;
        let key = unnamed_key(&channel.name, conversation, message_id);
        if store.kv_get(UNNAMED_NAMESPACE, &key).await?.is_none() {
            return Ok(false);
        }
        let webhook_id = format!(
            "msg_{}",
            short_hash(&format!(
                "{}/{conversation}/{message_id}#followup",
                channel.name
            ))
        );
        let reference = if reference.is_empty() {
            linked_reference(channel, ticket, &Value::Null)
                .await
                .map_err(MessagingError::from)?
        } else {
            reference.to_owned()
        };
        let body = callback_body(
            "ticket.updated",
            &channel.name,
            conversation,
            json!({"id": ticket, "ref": reference, "url": channel.helpdesk.ticket_url(ticket)}),
            &[message_id],
            "followup",
        );
        self.enqueue_callback(&channel.name, conversation, &webhook_id, &body)
            .await?;
        store.kv_delete(UNNAMED_NAMESPACE, &key).await?;
        Ok(true)
    }

    /// Enqueues one callback delivery (a repeat of a pending one is the same
    /// job).
    async fn enqueue_callback(
        &self,
        source: &str,
        conversation: &str,
        webhook_id: &str,
        body: &Value,
    ) -> Result<(), MessagingError> {
        let delivery = NewJob::new(
            CALLBACK_QUEUE,
            CALLBACK_JOB,
            format!("messaging-callback:{source}:{conversation}"),
            json!(CallbackPayload {
                source: source.to_owned(),
                webhook_id: webhook_id.to_owned(),
                body: body.to_string(),
            }),
        )
        .max_attempts(CALLBACK_ATTEMPTS)
        .unique_key(format!("messaging.callback:{webhook_id}"));
        tracing::debug!(%webhook_id, "callback enqueued");
        self.inner.store.enqueue(delivery).await?;
        Ok(())
    }

    /// The conversation's stored state (tests, admin).
    pub async fn conversation(
        &self,
        source: &str,
        conversation: &str,
    ) -> Result<ConversationState, MessagingError> {
        state::load(&self.inner.store, source, conversation).await
    }

    /// Files one accepted message into its conversation's durable buffer and
    /// schedules the flush that takes it to the help desk. No call to the
    /// help desk here: whatever state the help desk is in, the message is
    /// kept first, and the flush job (which can wait out an outage) does the
    /// rest, in order.
    async fn buffer(&self, job: &Job, waker: &Waker) -> Result<(), JobError> {
        let p: BufferPayload = payload(job)?;
        let channel = self.require(&p.source)?;
        let store = &self.inner.store;
        let conversation = p.message.conversation_id.clone();
        let mut state = state::load(store, &p.source, &conversation).await?;
        if !state.has_message(&p.message.message_id) {
            drop_stale_session(
                channel,
                &p.source,
                &conversation,
                &mut state,
                p.message.received_at,
            );
            state.buffer.push(p.message);
            state::save(store, &p.source, &conversation, &state).await?;
        }
        // Also when an earlier attempt buffered the message and then failed
        // (or the process stopped) before this step: without its flush the
        // burst would wait forever. Retrying is always safe here and always
        // needed, so a failure is transient whatever its cause.
        self.schedule_flush(channel, &p.source, &conversation, &state, waker)
            .await
            .map_err(|e| {
                JobError::transient(format!(
                    "the message is buffered but its flush could not be scheduled: {e}"
                ))
            })
    }

    /// Attempts of a flush job: at least [`FLUSH_ATTEMPTS`], so a help desk
    /// outage of hours only delays the messages waiting in the buffer.
    fn flush_attempts(&self) -> i32 {
        self.inner.max_attempts.max(FLUSH_ATTEMPTS)
    }

    /// (Re)schedules the conversation's one flush job (debounce key): at once
    /// when the buffered messages are followups of the open ticket, else when
    /// the first burst's merge window closes; with `open_on = "handoff"` and
    /// no ticket, the handoff flushes.
    async fn schedule_flush(
        &self,
        channel: &Channel,
        source: &str,
        conversation: &str,
        state: &ConversationState,
        waker: &Waker,
    ) -> Result<(), MessagingError> {
        if state.buffer.is_empty() {
            return Ok(());
        }
        let (run_at, reason) = if state.ticket.is_some() && channel.settings.followups {
            (store::now_ms(), "window")
        } else if channel.opens_on_first_message() || state.buffer.len() >= MAX_BURST {
            (first_burst(channel, &state.buffer).1, "window")
        } else if state.handed_off() {
            // A handoff whose job gave up: the bot handed these messages
            // over already, so they (and this one) go now.
            (store::now_ms(), "handoff")
        } else {
            return Ok(());
        };
        let flush = NewJob::new(
            channel.target(),
            FLUSH_JOB,
            ordering_key(source, conversation),
            json!({"source": source, "conversation_id": conversation, "reason": reason}),
        )
        .run_at(run_at)
        .max_attempts(self.flush_attempts())
        .unique_key(flush_key(source, conversation));
        self.inner.store.enqueue(flush).await?;
        waker.wake();
        Ok(())
    }

    /// The buffered messages, in order, as followups of the open `ticket`.
    /// Each leaves the buffer once it is in the help desk, so a retry goes on
    /// where the last attempt stopped.
    #[allow(clippy::too_many_arguments)]
    async fn add_followups(
        &self,
        channel: &Channel,
        job: &Job,
        source: &str,
        conversation: &str,
        state: &mut ConversationState,
        ticket: &TicketRef,
        status: TicketStatus,
        waker: &Waker,
    ) -> Result<(), JobError> {
        let store = &self.inner.store;
        if matches!(status, TicketStatus::Waiting | TicketStatus::Solved) {
            // The ticket waited for the customer, or was solved, and the
            // customer answered: GLPI reopens it only for a requester's own
            // followup (the bridge writes as its API account) and iTop only
            // on a stimulus, so the bridge moves it back to in progress.
            channel
                .helpdesk
                .set_status(ticket.id, TicketStatus::Assigned, None)
                .await
                .map_err(MessagingError::from)?;
            channel
                .remember_status(ticket.id, TicketStatus::Assigned)
                .await;
        }
        while let Some(message) = state.buffer.first().cloned() {
            self.add_followup(channel, job, ticket, &message).await?;
            // The callback before the message leaves the buffer: should this
            // fail, the retry finds the followup linked and enqueues it then.
            if has_callback(channel)
                && self
                    .followup_callback(
                        channel,
                        conversation,
                        &message.message_id,
                        ticket.id,
                        &ticket.reference,
                    )
                    .await?
            {
                waker.wake();
            }
            state.buffer.remove(0);
            state::save(store, source, conversation, state).await?;
        }
        Ok(())
    }

    async fn add_followup(
        &self,
        channel: &Channel,
        job: &Job,
        ticket: &TicketRef,
        message: &ChannelMessage,
    ) -> Result<(), JobError> {
        let store = &self.inner.store;
        let source_id = format!("{}/{}", message.conversation_id, message.message_id);
        let system = source_system(&channel.name);
        let marker = format!(
            "tb-msg-{}",
            short_hash(&format!("{}/{source_id}", channel.name))
        );
        let link = store
            .link(FOLLOWUP_LINK, &system, &source_id, channel.target())
            .await
            .map_err(MessagingError::from)?;
        match link.as_ref().map(|l| l.state) {
            Some(LinkState::Linked) => return Ok(()),
            Some(LinkState::Pending) => {
                let existing = channel
                    .helpdesk
                    .followups(ticket.id)
                    .await
                    .map_err(MessagingError::from)?;
                if let Some(found) = existing.iter().find(|f| f.content.contains(&marker)) {
                    return self
                        .link_followup(channel, &system, &source_id, ticket, found.id)
                        .await;
                }
            }
            None => {}
        }
        store
            .put_link(&NewLink {
                kind: FOLLOWUP_LINK.to_owned(),
                source_system: system.clone(),
                source_id: source_id.clone(),
                target_system: channel.target().to_owned(),
                target_id: None,
                state: LinkState::Pending,
                data: json!({"ticket": ticket.id}),
            })
            .await
            .map_err(MessagingError::from)?;
        let (files, notes) = self
            .fetch_attachments(channel, job, std::slice::from_ref(message))
            .await?;
        let mut html = content::message_html(message);
        for note in &notes {
            html.push_str(&format!("<p><i>{}</i></p>", html_escape::encode_text(note)));
        }
        html.push_str(&format!("<p><small>{marker}</small></p>"));
        let id = channel
            .helpdesk
            .add_followup(
                ticket.id,
                &NewFollowup {
                    content: html,
                    private: false,
                    author: None,
                    attachments: files,
                },
            )
            .await
            .map_err(MessagingError::from)?;
        self.link_followup(channel, &system, &source_id, ticket, id)
            .await
    }

    async fn link_followup(
        &self,
        channel: &Channel,
        system: &str,
        source_id: &str,
        ticket: &TicketRef,
        followup: i64,
    ) -> Result<(), JobError> {
        let store = &self.inner.store;
        let mut data = json!({"ticket": ticket.id});
        if !ticket.reference.is_empty() {
            data["ref"] = json!(ticket.reference);
        }
        store
            .put_link(&NewLink {
                kind: FOLLOWUP_LINK.to_owned(),
                source_system: system.to_owned(),
                source_id: source_id.to_owned(),
                target_system: channel.target().to_owned(),
                target_id: Some(followup.to_string()),
                state: LinkState::Linked,
                data,
            })
            .await
            .map_err(MessagingError::from)?;
        store
            .remember_write(channel.target(), &format!("followup:{followup}"), source_id)
            .await
            .map_err(MessagingError::from)?;
        Ok(())
    }

    /// Files of `messages`; an attachment that cannot be had becomes a note
    /// (after a few attempts when its host is only unreachable).
    async fn fetch_attachments(
        &self,
        channel: &Channel,
        job: &Job,
        messages: &[ChannelMessage],
    ) -> Result<(Vec<Attachment>, Vec<String>), JobError> {
        let mut files = Vec::new();
        let mut notes = Vec::new();
        // Bytes of the files kept so far: past `max_files_bytes` the rest
        // become notes, so a burst never holds more than that (and one file).
        let mut kept: u64 = 0;
        let budget = channel.settings.max_files_bytes;
        for input in messages.iter().flat_map(|m| m.attachments.iter()) {
            let name = if input.filename.is_empty() {
                "a file"
            } else {
                input.filename.as_str()
            };
            let over_budget = || {
                format!(
                    "Attachment not included: {name}: the files sent together pass \
                     {budget} bytes (max_files_bytes)"
                )
            };
            if kept >= budget {
                notes.push(over_budget());
                continue;
            }
            let private_allowed = channel.settings.allow_private_attachment_hosts;
            let http = if private_allowed {
                &self.inner.http
            } else {
                &self.inner.public_http
            };
            match attachments::fetch(
                http,
                input,
                channel.settings.max_attachment_bytes,
                private_allowed,
            )
            .await
            {
                Ok(file) => {
                    let size = u64::try_from(file.bytes.len()).unwrap_or(u64::MAX);
                    if kept.saturating_add(size) > budget {
                        notes.push(over_budget());
                    } else {
                        kept += size;
                        files.push(file);
                    }
                }
                Err(e) if e.is_retryable() && job.attempts < ATTACHMENT_ATTEMPTS => {
                    return Err(JobError::transient(e.to_string()));
                }
                Err(e) => notes.push(format!("Attachment not included: {e}")),
            }
        }
        Ok((files, notes))
    }

    async fn flush(&self, job: &Job, waker: &Waker) -> Result<(), JobError> {
        let p: FlushPayload = payload(job)?;
        let channel = self.require(&p.source)?;
        self.process(
            channel,
            job,
            &p.source,
            &p.conversation_id,
            &p.reason,
            waker,
        )
        .await
    }

    /// The help desk's part of a conversation, in order: the buffered
    /// messages become followups of its open ticket, or a ticket per burst
    /// whose merge window has closed (every buffered message at once on a
    /// handoff). Whatever fails leaves the messages in the buffer.
    async fn process(
        &self,
        channel: &Channel,
        job: &Job,
        source: &str,
        conversation: &str,
        reason: &str,
        waker: &Waker,
    ) -> Result<(), JobError> {
        let store = &self.inner.store;
        let mut state = state::load(store, source, conversation).await?;
        if reason == "handoff" {
            // The silence before a handoff ends when the handoff is accepted
            // (its job's creation), whenever its job gets to run: a help desk
            // outage, or `jobs retry` of the dead job a day later, must not
            // turn the messages it covers into a stale bot session.
            let accepted = job.created_at;
            let mut changed =
                drop_stale_session(channel, source, conversation, &mut state, accepted);
            // Noted before any help desk call: should this job give up, the
            // messages stay the help desk's (the next message flushes them).
            if !state.buffer.is_empty() && state.handoff_at.is_none_or(|at| at < accepted) {
                state.handoff_at = Some(accepted);
                changed = true;
            }
            if changed {
                state::save(store, source, conversation, &state).await?;
            }
        }
        loop {
            if state.buffer.is_empty() {
                return Ok(());
            }
            if let Some(ticket) = state.ticket.clone()
                && channel.settings.followups
            {
                let status = channel.ticket_status(ticket.id).await?;
                match status {
                    // A reply to a solved ticket reopens it, as GLPI does
                    // for a requester's own followup.
                    Some(status) if status.is_open() || status == TicketStatus::Solved => {
                        return self
                            .add_followups(
                                channel,
                                job,
                                source,
                                conversation,
                                &mut state,
                                &ticket,
                                status,
                                waker,
                            )
                            .await;
                    }
                    other => {
                        // Closed, deleted, or moved out of the account's
                        // sight: the buffered messages open a new ticket,
                        // which names this one.
                        let why = if other.is_some() { "closed" } else { "gone" };
                        tracing::info!(
                            source,
                            conversation,
                            ticket = ticket.id,
                            why,
                            "the conversation's ticket takes no more messages: the next burst opens a new one"
                        );
                        state.previous = Some(PreviousTicket {
                            id: ticket.id,
                            why: why.to_owned(),
                        });
                        state.ticket = None;
                        state::save(store, source, conversation, &state).await?;
                    }
                }
            }
            let mut take = state.buffer.len();
            if reason != "handoff" {
                if !channel.opens_on_first_message() && state.buffer.len() < MAX_BURST {
                    // The burst waits for the bot's handoff (unless full).
                    return Ok(());
                }
                let (burst, closes) = first_burst(channel, &state.buffer);
                if burst == state.buffer.len() {
                    if closes > store::now_ms() {
                        // Scheduled for followups of a ticket that is closed
                        // since: these messages are a new burst, whose window
                        // is still open.
                        self.schedule_flush(channel, source, conversation, &state, waker)
                            .await?;
                        return Ok(());
                    }
                    if self
                        .defer_for_backlog(channel, job, conversation, &state, waker)
                        .await?
                    {
                        return Ok(());
                    }
                }
                take = burst;
            }
            // The engine was behind (or the help desk down) and the buffer
            // holds several bursts: the first becomes its ticket, the next
            // messages follow it (followups, or the next ticket).
            loop {
                match self
                    .flush_burst(
                        channel,
                        job,
                        source,
                        conversation,
                        reason,
                        &mut state,
                        take,
                        waker,
                    )
                    .await
                {
                    Ok(()) => break,
                    // It cannot become a ticket as it is (say, nobody has its
                    // phone and requesters are not created): the next burst
                    // joins it and they are tried together (the email the bot
                    // asked for may name the requester now).
                    Err(error) if !error.is_retryable() && take < state.buffer.len() => {
                        tracing::warn!(source, conversation, %error,
                            "the buffered messages could not become a ticket; the next ones join them");
                        take = take.saturating_add(first_burst(channel, &state.buffer[take..]).0);
                    }
                    Err(error) => return Err(error),
                }
            }
        }
    }

    /// Turns the first `take` buffered messages into one ticket and removes
    /// them from the buffer.
    #[allow(clippy::too_many_arguments)]
    async fn flush_burst(
        &self,
        channel: &Channel,
        job: &Job,
        source: &str,
        conversation: &str,
        reason: &str,
        state: &mut ConversationState,
        take: usize,
        waker: &Waker,
    ) -> Result<(), JobError> {
        let store = &self.inner.store;
        let burst: Vec<ChannelMessage> = state.buffer.iter().take(take).cloned().collect();
        if burst.is_empty() {
            return Ok(());
        }
        let generation = state.generation;
        let source_id = format!("{conversation}#{generation}");
        let system = source_system(source);
        let marker = format!("tb-conv-{}", short_hash(&format!("{}/{source_id}", source)));
        let link = store
            .link(TICKET_LINK, &system, &source_id, channel.target())
            .await
            .map_err(MessagingError::from)?;
        let linked = match link {
            Some(l) if l.state == LinkState::Linked => {
                match l.target_id.as_deref().and_then(|id| id.parse::<i64>().ok()) {
                    Some(id) => Some(TicketRef {
                        id,
                        reference: linked_reference(channel, id, &l.data)
                            .await
                            .map_err(MessagingError::from)?,
                        url: channel.helpdesk.ticket_url(id),
                        generation,
                    }),
                    None => None,
                }
            }
            Some(_) => channel
                .helpdesk
                .find_ticket_by_marker(&marker)
                .await
                .map_err(MessagingError::from)?
                .map(|t| TicketRef {
                    id: t.id,
                    reference: t.reference,
                    url: t.url,
                    generation,
                }),
            None => None,
        };
        let (ticket, created) = match linked {
            Some(ticket) => (ticket, false),
            None => {
                store
                    .put_link(&NewLink {
                        kind: TICKET_LINK.to_owned(),
                        source_system: system.clone(),
                        source_id: source_id.clone(),
                        target_system: channel.target().to_owned(),
                        target_id: None,
                        state: LinkState::Pending,
                        data: json!({"marker": marker}),
                    })
                    .await
                    .map_err(MessagingError::from)?;
                let ticket = self
                    .create_ticket(
                        channel,
                        job,
                        &burst,
                        state.previous.as_ref(),
                        &marker,
                        generation,
                    )
                    .await?;
                (ticket, true)
            }
        };
        store
            .put_link(&NewLink {
                kind: TICKET_LINK.to_owned(),
                source_system: system,
                source_id,
                target_system: channel.target().to_owned(),
                target_id: Some(ticket.id.to_string()),
                state: LinkState::Linked,
                data: json!({"marker": marker, "url": ticket.url, "ref": ticket.reference}),
            })
            .await
            .map_err(MessagingError::from)?;
        channel.remember_status(ticket.id, TicketStatus::New).await;
        let message_ids: Vec<&str> = burst.iter().map(|m| m.message_id.as_str()).collect();
        if has_callback(channel) {
            let webhook_id = format!(
                "msg_{}",
                short_hash(&format!("{}/{conversation}#{generation}", source))
            );
            let body = callback_body(
                "ticket.created",
                source,
                conversation,
                json!({"id": ticket.id, "ref": ticket.reference, "url": ticket.url}),
                &message_ids,
                reason,
            );
            self.enqueue_callback(source, conversation, &webhook_id, &body)
                .await?;
            waker.wake();
            // This callback names these messages' ticket: no followup
            // callback is owed for them.
            for id in &message_ids {
                store
                    .kv_delete(UNNAMED_NAMESPACE, &unnamed_key(source, conversation, id))
                    .await
                    .map_err(MessagingError::from)?;
            }
        }
        store
            .audit(&NewAudit {
                job_id: Some(job.id),
                system: channel.target().to_owned(),
                action: if created {
                    "ticket.create"
                } else {
                    "ticket.relink"
                }
                .to_owned(),
                object_key: format!("ticket:{}", ticket.id),
                detail: json!({"source": source, "conversation_id": conversation,
                    "generation": generation, "messages": message_ids}),
            })
            .await
            .map_err(MessagingError::from)?;
        state.buffer.drain(..burst.len());
        if !state.handed_off() {
            state.handoff_at = None;
        }
        state.ticket = Some(ticket);
        state.previous = None;
        state.generation = generation.saturating_add(1);
        state::save(store, source, conversation, state).await?;
        Ok(())
    }

    /// A message accepted inside the window whose buffer job has not run yet
    /// (the engine is behind) belongs in this ticket: instead of flushing now,
    /// schedule the flush again behind it. Never past `max_wait`.
    async fn defer_for_backlog(
        &self,
        channel: &Channel,
        job: &Job,
        conversation: &str,
        state: &ConversationState,
        waker: &Waker,
    ) -> Result<bool, JobError> {
        let now = store::now_ms();
        let max_wait = i64::try_from(channel.settings.max_wait.as_millis()).unwrap_or(i64::MAX);
        if state
            .first_at()
            .is_some_and(|first| now >= first.saturating_add(max_wait))
        {
            return Ok(false);
        }
        let waiting = self
            .inner
            .store
            .jobs(&store::JobFilter {
                status: Some(store::JobStatus::Pending),
                kind: Some(BUFFER_JOB.to_owned()),
                ordering_key: Some(job.ordering_key.clone()),
                queue: None,
                limit: Some(1000),
            })
            .await
            .map_err(MessagingError::from)?;
        // Only messages that arrived before the window closed extend it.
        let window = i64::try_from(channel.settings.merge_window.as_millis()).unwrap_or(i64::MAX);
        let closes = state.last_at().unwrap_or(now).saturating_add(window);
        let inside = waiting.iter().any(|w| {
            w.payload
                .pointer("/message/received_at")
                .and_then(Value::as_i64)
                .is_some_and(|received| received <= closes)
        });
        if !inside {
            return Ok(false);
        }
        // This job is running, so the debounce key is free: the new flush gets
        // a later id than the waiting message and runs after it.
        let again = NewJob::new(
            job.queue.clone(),
            FLUSH_JOB,
            job.ordering_key.clone(),
            job.payload.clone(),
        )
        .max_attempts(job.max_attempts)
        .unique_key(flush_key(&channel.name, conversation));
        self.inner
            .store
            .enqueue(again)
            .await
            .map_err(MessagingError::from)?;
        waker.wake();
        Ok(true)
    }

    async fn create_ticket(
        &self,
        channel: &Channel,
        job: &Job,
        messages: &[ChannelMessage],
        previous: Option<&PreviousTicket>,
        marker: &str,
        generation: u64,
    ) -> Result<TicketRef, JobError> {
        let settings = &channel.settings;
        let last = |f: fn(&ChannelMessage) -> Option<String>| messages.iter().rev().find_map(f);
        let caller = Caller {
            name: last(|m| m.name.clone()),
            email: last(|m| m.email.clone()),
            phone: messages.first().map(|m| m.phone.clone()),
        };
        let hint = OrganisationHint {
            tax_id: last(|m| m.tax_id.clone()).or_else(|| settings.tax_id.clone()),
            id: None,
        };
        let organisation = match channel
            .organisations
            .choose(&hint, settings.entity, UnknownTaxId::UseDefault)
            .await
            .map_err(MessagingError::from)?
        {
            OrganisationChoice::Found(id) => Some(id),
            OrganisationChoice::TaxIdNotFound(_) => settings.entity,
            OrganisationChoice::TargetDefault => None,
        };
        let policy = RequesterPolicy {
            create_missing: settings.create_requesters,
            contact_when_phone_only: false,
        };
        // Phone and email decide who the person is; the organisation only
        // matters when the person is created, so it is part of the key.
        let requester_key = format!(
            "{}|{}|{}",
            caller.phone.as_deref().unwrap_or_default(),
            caller.email.as_deref().unwrap_or_default(),
            organisation.map(|o| o.to_string()).unwrap_or_default()
        );
        let resolved = match channel.cached_requester(&requester_key).await {
            Some(resolved) => resolved,
            None => {
                let resolved = resolve_requester_in_order(
                    channel.helpdesk.as_ref(),
                    &PersonClaims::new(self.inner.store.clone()),
                    &caller,
                    organisation,
                    policy,
                    LookupOrder::PhoneFirst,
                )
                .await
                .map_err(MessagingError::from)?
                .ok_or_else(|| {
                    JobError::permanent(format!(
                        "no requester with phone {} and create_requesters = false",
                        caller.phone.as_deref().unwrap_or("-")
                    ))
                })?;
                channel.remember_requester(requester_key, &resolved).await;
                resolved
            }
        };
        let organisation = if settings.entity_from_requester {
            resolved
                .person
                .as_ref()
                .and_then(|p| p.organisation)
                .or(organisation)
        } else {
            organisation
        };
        let (files, mut notes) = self.fetch_attachments(channel, job, messages).await?;
        if let Some(previous) = previous {
            let why = match previous.why.as_str() {
                "solved" => "was solved",
                "closed" => "was closed",
                _ => "was deleted or can no longer be read by the bridge",
            };
            notes.insert(
                0,
                format!(
                    "This conversation continues from ticket #{}, which {why}.",
                    previous.id
                ),
            );
        }
        let requester: Requester = resolved.requester;
        if let Some(phone) = caller.phone.as_deref() {
            let remembered = serde_json::to_value(RememberedRequester {
                requester: requester.clone(),
                person_email: resolved.person.and_then(|p| p.email),
            })
            .map_err(|e| MessagingError::Corrupt {
                what: "requester",
                reason: e.to_string(),
            })?;
            self.inner
                .store
                .kv_put(
                    REQUESTER_NAMESPACE,
                    &format!("{}/{phone}", channel.name),
                    &remembered,
                )
                .await
                .map_err(MessagingError::from)?;
        }
        let created = channel
            .helpdesk
            .create_ticket(&NewTicket {
                organisation,
                title: content::ticket_title(messages),
                content: content::ticket_html(messages, &notes),
                requester,
                category: None,
                urgency: None,
                kind: TicketKind::Request,
                request_type: None,
                assignee: None,
                marker: marker.to_owned(),
                attachments: files,
            })
            .await
            .map_err(MessagingError::from)?;
        self.inner
            .store
            .remember_write(channel.target(), &format!("ticket:{}", created.id), marker)
            .await
            .map_err(MessagingError::from)?;
        Ok(TicketRef {
            id: created.id,
            reference: created.reference,
            url: created.url,
            generation,
        })
    }

    async fn callback(&self, job: &Job) -> Result<(), JobError> {
        let p: CallbackPayload = payload(job)?;
        let channel = self.require(&p.source)?;
        let (Some(url), Some(signer)) = (&channel.settings.callback_url, &channel.signer) else {
            // The callback was switched off since: nothing to deliver.
            return Ok(());
        };
        callback::deliver(
            &self.inner.http,
            url.as_str(),
            signer,
            &p.webhook_id,
            p.body.as_bytes(),
        )
        .await
    }
}

struct JobRunner {
    flow: Messaging,
    waker: Waker,
}

#[async_trait::async_trait]
impl Handler for JobRunner {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        match job.kind.as_str() {
            BUFFER_JOB => self.flow.buffer(job, &self.waker).await,
            FLUSH_JOB => self.flow.flush(job, &self.waker).await,
            CALLBACK_JOB => self.flow.callback(job).await,
            other => Err(JobError::permanent(format!("not a messaging job: {other}"))),
        }
    }
}

/// Whether the source posts callbacks.
fn has_callback(channel: &Channel) -> bool {
    channel.settings.callback_url.is_some() && channel.signer.is_some()
}

/// How many of `buffer`'s first messages form one burst (`open_on =
/// "first_message"`: until one arrives after the burst's merge window has
/// closed; else all of them), and when that burst's window closes (last
/// message + merge window, or first + max wait).
fn first_burst(channel: &Channel, buffer: &[ChannelMessage]) -> (usize, i64) {
    let window = i64::try_from(channel.settings.merge_window.as_millis()).unwrap_or(i64::MAX);
    let max_wait = i64::try_from(channel.settings.max_wait.as_millis()).unwrap_or(i64::MAX);
    let Some(head) = buffer.first() else {
        return (0, store::now_ms());
    };
    let (mut first, mut last) = (head.received_at, head.received_at);
    let closes = |first: i64, last: i64| {
        last.saturating_add(window)
            .min(first.saturating_add(max_wait))
    };
    for (i, message) in buffer.iter().enumerate().skip(1) {
        if i >= MAX_BURST {
            // Full: it closed with its last message.
            return (i, last);
        }
        if channel.opens_on_first_message() && message.received_at > closes(first, last) {
            return (i, closes(first, last));
        }
        first = first.min(message.received_at);
        last = last.max(message.received_at);
    }
    if buffer.len() >= MAX_BURST {
        return (buffer.len(), last);
    }
    (buffer.len(), closes(first, last))
}

/// `open_on = "handoff"`: when the buffered messages were followed by more than
/// `handoff_session` of silence before `now` (the next message's arrival, or
/// a handoff's acceptance), the bot handled that conversation alone and it
/// never came to the help desk: its messages are dropped so they do not open
/// a ticket weeks later. Messages a handoff covered are never dropped. True
/// when something was dropped.
fn drop_stale_session(
    channel: &Channel,
    source: &str,
    conversation: &str,
    state: &mut ConversationState,
    now: i64,
) -> bool {
    if channel.opens_on_first_message() {
        return false;
    }
    if state.ticket.is_some() && channel.settings.followups {
        // Followups waiting for the help desk, not a bot's session.
        return false;
    }
    if state.handed_off() {
        // The bot handed them over: they wait for the help desk, however long.
        return false;
    }
    let session = i64::try_from(channel.settings.handoff_session.as_millis()).unwrap_or(i64::MAX);
    let Some(last) = state.last_at() else {
        return false;
    };
    if now.saturating_sub(last) <= session {
        return false;
    }
    tracing::info!(
        source,
        conversation,
        dropped = state.buffer.len(),
        "messages the bot handled without a handoff are dropped"
    );
    state.buffer.clear();
    true
}

/// A callback's body: the same shape for every kind, so a bot reads them alike.
fn callback_body(
    kind: &str,
    source: &str,
    conversation: &str,
    ticket: Value,
    message_ids: &[&str],
    reason: &str,
) -> Value {
    json!({
        "type": kind,
        "timestamp": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "data": {
            "source": source,
            "conversation_id": conversation,
            "ticket": ticket,
            "message_ids": message_ids,
            "reason": reason,
        }
    })
}

/// The reference of a linked ticket: stored in the link (`ref`), else as
/// the id gives it (GLPI), else as the target says (a link stored by an
/// earlier version); the id when the ticket is not found.
async fn linked_reference(
    channel: &Channel,
    id: i64,
    data: &serde_json::Value,
) -> Result<String, flows::HelpdeskError> {
    if let Some(stored) = data
        .get("ref")
        .and_then(serde_json::Value::as_str)
        .filter(|r| !r.is_empty())
    {
        return Ok(stored.to_string());
    }
    if let Some(known) = channel.helpdesk.reference_of_id(id) {
        return Ok(known);
    }
    Ok(channel
        .helpdesk
        .ticket(id)
        .await?
        .map(|t| t.reference)
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::helpdesk::PersonKind;

    #[test]
    fn a_remembered_requester_reads_entries_of_earlier_versions_and_they_read_it() {
        let contact = Requester::Person {
            id: 7,
            kind: PersonKind::Contact,
        };
        let old = serde_json::to_value(&contact).unwrap();
        let read: RememberedRequester = serde_json::from_value(old).unwrap();
        assert_eq!(
            read,
            RememberedRequester {
                requester: contact.clone(),
                person_email: None
            }
        );
        let new = serde_json::to_value(RememberedRequester {
            requester: contact.clone(),
            person_email: Some("elis@costa.com.br".into()),
        })
        .unwrap();
        assert_eq!(new["person_email"], "elis@costa.com.br");
        let back: RememberedRequester = serde_json::from_value(new.clone()).unwrap();
        assert_eq!(back.person_email.as_deref(), Some("elis@costa.com.br"));
        // A rolled-back version still reads the requester.
        assert_eq!(serde_json::from_value::<Requester>(new).unwrap(), contact);
        let email_only = Requester::EmailOnly {
            email: "ana@example.com".into(),
            name: None,
        };
        let stored = serde_json::to_value(RememberedRequester {
            requester: email_only.clone(),
            person_email: None,
        })
        .unwrap();
        assert_eq!(stored, serde_json::to_value(&email_only).unwrap());
    }
}
