//! sim-chatwoot
