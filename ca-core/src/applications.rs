//! Applications and the counter workflow (issue 5): placeholder, being written.
