//! Synthetic decks.
