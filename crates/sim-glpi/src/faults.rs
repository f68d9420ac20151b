//! Fault injection and call counters, shared between the test and the server.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::time::Duration;

/// Faults a test can set at any time; they apply to the next requests.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<FaultState>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct FaultState {
    pub(crate) latency: Duration,
    /// Extra delay of one endpoint's answers (`"POST /Contact"`), before it is carried out.
    pub(crate) endpoint_latency: Option<(String, Duration)>,
    pub(crate) init_session_delay: Duration,
    pub(crate) fail_next: u64,
    pub(crate) fail_status: u16,
    pub(crate) drop_next: u64,
    pub(crate) expire_after_calls: Option<u64>,
    /// Endpoint key (`"POST /Ticket"`) and how many of its answers to lose.
    pub(crate) lose_answers: Option<(String, u64)>,
    /// Endpoint key (`"GET /Ticket/:id"`) and how many of its calls to refuse with 403.
    pub(crate) refuse: Option<(String, u64)>,
    /// How many requests get [`FaultState::raw_answer`] instead of being served.
    pub(crate) raw_next: u64,
    /// Status, content type and body answered by [`Faults::answer_next`].
    pub(crate) raw_answer: Option<(u16, String, String)>,
}

/// What the server must do with one incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Serve,
    Fail(u16),
    /// Answer this status, content type and body without serving the request.
    Raw(u16, String, String),
    Drop,
}

impl Faults {
    /// Delay every response by `latency` (0 turns it off).
    pub fn set_latency(&self, latency: Duration) {
        self.inner.lock().latency = latency;
    }

    /// Delay requests to `endpoint` (a key such as `"POST /Contact"`, as in the
    /// call counters) by `latency` before they are carried out, on top of any
    /// [`set_latency`](Self::set_latency); zero turns it off. A slow create
    /// leaves the window in which a concurrent search still finds nothing.
    pub fn set_endpoint_latency(&self, endpoint: &str, latency: Duration) {
        self.inner.lock().endpoint_latency =
            (!latency.is_zero()).then(|| (endpoint.to_owned(), latency));
    }

    /// Answer the next `n` requests with HTTP `status` (e.g. 500, 502, 503) and a JSON error body.
    pub fn fail_next(&self, n: u64, status: u16) {
        let mut s = self.inner.lock();
        s.fail_next = n;
        s.fail_status = status;
    }

    /// Answer the next `n` requests with `status`, `content_type` and `body` as
    /// they are, without carrying them out: what a proxy or web server in front
    /// of GLPI answers (an HTML error page, an empty 403...).
    pub fn answer_next(&self, n: u64, status: u16, content_type: &str, body: &str) {
        let mut s = self.inner.lock();
        s.raw_next = n;
        s.raw_answer = Some((status, content_type.to_owned(), body.to_owned()));
    }

    /// Close the connection of the next `n` requests without sending any response.
    pub fn drop_next(&self, n: u64) {
        self.inner.lock().drop_next = n;
    }

    /// Every session (open now or opened later) becomes invalid after it served `n` calls:
    /// call n+1 answers 401 `ERROR_SESSION_TOKEN_INVALID`. `n = 0` expires sessions on their
    /// next use.
    pub fn expire_sessions_after_calls(&self, n: u64) {
        self.inner.lock().expire_after_calls = Some(n);
    }

    /// Carry out the next `n` requests to `endpoint` (a key such as
    /// `"POST /Ticket"`, as in the call counters) but close the connection
    /// instead of answering: the write happened and the caller never learns it,
    /// as when a proxy times out after GLPI created the ticket.
    pub fn lose_answers(&self, endpoint: &str, n: u64) {
        self.inner.lock().lose_answers = Some((endpoint.to_owned(), n));
    }

    /// Whether the answer to this request (by endpoint key) is to be lost;
    /// counts it.
    pub(crate) fn take_lost_answer(&self, endpoint: &str) -> bool {
        let mut s = self.inner.lock();
        match &mut s.lose_answers {
            Some((wanted, n)) if *n > 0 && wanted == endpoint => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Refuse the next `n` requests to `endpoint` (a key such as `"GET /Ticket/:id"`)
    /// with GLPI's 403 `ERROR_RIGHT_MISSING`, without carrying them out: what GLPI answers
    /// to a read of an item outside the session's reach, e.g. a ticket a rule moved to
    /// another entity.
    pub fn refuse(&self, endpoint: &str, n: u64) {
        self.inner.lock().refuse = Some((endpoint.to_owned(), n));
    }

    /// Whether this request (by endpoint key) is to be refused; counts it.
    pub(crate) fn take_refusal(&self, endpoint: &str) -> bool {
        let mut s = self.inner.lock();
        match &mut s.refuse {
            Some((wanted, n)) if *n > 0 && wanted == endpoint => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Delay only initSession answers (slow LDAP/DB logins).
    pub fn init_session_delay(&self, delay: Duration) {
        self.inner.lock().init_session_delay = delay;
    }

    /// Remove every fault.
    pub fn clear(&self) {
        *self.inner.lock() = FaultState::default();
    }

    pub(crate) fn snapshot(&self) -> FaultState {
        self.inner.lock().clone()
    }

    /// Consume one pending failure or drop, if any.
    pub(crate) fn verdict(&self) -> Verdict {
        let mut s = self.inner.lock();
        if s.drop_next > 0 {
            s.drop_next -= 1;
            return Verdict::Drop;
        }
        if s.fail_next > 0 {
            s.fail_next -= 1;
            return Verdict::Fail(s.fail_status);
        }
        if s.raw_next > 0
            && let Some((status, content_type, body)) = s.raw_answer.clone()
        {
            s.raw_next -= 1;
            return Verdict::Raw(status, content_type, body);
        }
        Verdict::Serve
    }
}

/// Calls received, by endpoint (`"POST /Ticket"`, `"GET /Ticket/:id"`, `"GET /search/User"`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) total: u64,
    pub(crate) by_endpoint: BTreeMap<String, u64>,
    pub(crate) sessions_opened: u64,
    pub(crate) sessions_killed: u64,
}
