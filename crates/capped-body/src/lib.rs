//! Reading a remote system's answer without trusting its size.
//!
//! `reqwest::Response::bytes()` and `text()` read a body whatever its length,
//! so a misbehaving server (or a URL that points at a huge file) makes the
//! caller allocate without bound. [`read`] stops at a limit and says so;
//! [`excerpt`] reads at most a few KiB of an error answer, for its message.
//!
//! A `Content-Length` above the limit fails before anything is read, but the
//! header is never trusted alone: the bytes are counted as they arrive, so a
//! chunked answer (no length) or one longer than it announced stops at the
//! limit too. (`http-body-util`'s `Limited` counts the same way, but hands a
//! boxed error back that would have to be downcast into `reqwest::Error` for
//! the connectors' timeout/connect classification, and cannot keep the prefix
//! that [`excerpt`] needs: one loop over `chunk()` serves both.)

use bytes::{Bytes, BytesMut};

#[cfg(feature = "testing")]
pub mod testing;

/// How much of an error answer is kept for its message: error bodies are a
/// JSON error or an HTML page, and a message longer than this says nothing
/// more.
pub const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The answer is longer than `limit` bytes (by its `Content-Length`, or
    /// counted): reading it again reads the same answer, so this is final.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The transfer failed (reset, timeout, broken chunking).
    #[error(transparent)]
    Transport(reqwest::Error),
}

/// The whole body, when it is at most `limit` bytes.
pub async fn read(response: reqwest::Response, limit: u64) -> Result<Bytes, ReadError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit)
    {
        return Err(ReadError::TooLarge { limit });
    }
    let (body, end) = read_up_to(response, limit).await;
    match end {
        End::Complete => Ok(body),
        End::Over => Err(ReadError::TooLarge { limit }),
        End::Failed(error) => Err(ReadError::Transport(error)),
    }
}

/// At most the first `limit` bytes of the body, for an error message: a
/// longer body is cut there and a transfer that fails ends it, silently (the
/// call has failed already; its message must not fail it differently).
pub async fn excerpt(response: reqwest::Response, limit: u64) -> Bytes {
    read_up_to(response, limit).await.0
}

enum End {
    Complete,
    Over,
    Failed(reqwest::Error),
}

/// Reads chunks until the body ends, fails, or would pass `limit` (the bytes
/// kept then are the first `limit`). Dropping the response afterwards closes
/// the connection rather than reading the rest.
async fn read_up_to(mut response: reqwest::Response, limit: u64) -> (Bytes, End) {
    let expected = response.content_length().unwrap_or(0).min(limit);
    let mut body = BytesMut::with_capacity(usize::try_from(expected).unwrap_or(0));
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return (body.freeze(), End::Complete),
            Err(error) => return (body.freeze(), End::Failed(error)),
        };
        let room = limit.saturating_sub(body.len() as u64);
        if chunk.len() as u64 > room {
            let keep = usize::try_from(room).unwrap_or(chunk.len());
            body.extend_from_slice(&chunk[..keep]);
            return (body.freeze(), End::Over);
        }
        body.extend_from_slice(&chunk);
    }
}
