//! The head-office server.
