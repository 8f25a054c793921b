//! The deck compiler.
