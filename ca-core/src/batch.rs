//! Batch issuance, recovery and CSR issuance (issue 6): placeholder, being written.
