//! The real small model (see the README); written next.
