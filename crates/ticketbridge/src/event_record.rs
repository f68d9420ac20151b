//! Handler of `event.record` jobs (the default job of `events` sources):
//! writes one audit line per event, exactly once even when the job runs
//! again after a crash: the line carries the event's dedupe key and is
//! inserted with `Store::audit_once`, one atomic statement. (Markers in the
//! key-value table written by earlier versions are still honoured.)

use std::time::Duration;

use engine::{Handler, JobError};
use serde_json::Value;
use store::{Job, NewAudit, Store, StoreError};

pub const KIND: &str = "event.record";
const LEGACY_MARKERS: &str = "event.record";

pub struct EventRecord {
    pub store: Store,
    /// Artificial work time (test knob `TICKETBRIDGE_TEST_RECORD_DELAY_MS`).
    pub delay: Duration,
}

#[async_trait::async_trait]
impl Handler for EventRecord {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let source = job
            .payload
            .get("source")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let dedupe = job
            .payload
            .get("dedupe_key")
            .and_then(Value::as_str)
            .ok_or_else(|| JobError::permanent("event.record payload has no dedupe_key"))?;
        let object_key = format!("{source}:{dedupe}");
        // Written by versions that recorded the line and then a marker.
        if self
            .store
            .kv_get(LEGACY_MARKERS, &object_key)
            .await
            .map_err(store_error)?
            .is_some()
        {
            return Ok(());
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let entry = NewAudit {
            job_id: Some(job.id),
            system: "events".to_owned(),
            action: KIND.to_owned(),
            object_key: object_key.clone(),
            detail: job.payload.get("event").cloned().unwrap_or(Value::Null),
        };
        self.store
            .audit_once(&format!("{KIND}:{object_key}"), &entry)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

fn store_error(error: StoreError) -> JobError {
    if error.is_retryable() {
        JobError::transient(error.to_string())
    } else {
        JobError::permanent(error.to_string())
    }
}
