//! sim-itop
