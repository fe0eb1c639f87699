//! Renewal, expiry queries and cross-platform binding (issue 5): placeholder, being written.
