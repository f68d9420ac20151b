//! chatwoot
