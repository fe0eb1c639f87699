-- 3: batch jobs (issue 6). Placeholder.
SELECT 1;
