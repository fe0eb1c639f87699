-- 12: sites (issue 15). Sites share one CA on PostgreSQL: certificates, issuances and audit
-- rows record the site that wrote them (NULL for rows from before, and for a CA with no site).
ALTER TABLE certificates ADD COLUMN site TEXT CHECK (site IN ('harbin', 'hegang', 'qiqihar'));
ALTER TABLE issuances ADD COLUMN site TEXT CHECK (site IN ('harbin', 'hegang', 'qiqihar'));
ALTER TABLE audit_log ADD COLUMN site TEXT CHECK (site IN ('harbin', 'hegang', 'qiqihar'));
CREATE INDEX certificates_site ON certificates(site);
