//! itop
