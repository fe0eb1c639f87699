-- 13: one signing path (issue 19). Every certificate the CA signs is a row of `certificates`
-- with its role: the holder's identity and seal certificates as before, and now the CA's own
-- working certificates (operator, OCSP signer, API TLS server, seal maker; encryption and CMP
-- signer reserved for what comes next), so revoking one puts it on the CRL and OCSP knows it.
-- SQLite cannot change a CHECK in place: rebuild the table (same columns, same order).
ALTER TABLE certificates DROP CONSTRAINT certificates_role_check;
ALTER TABLE certificates ADD CONSTRAINT certificates_role_check CHECK (role IN ('identity', 'seal', 'encryption', 'operator', 'ocsp-signer', 'tls-server', 'seal-maker', 'cmp-signer'));
