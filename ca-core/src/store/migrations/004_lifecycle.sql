-- 4: renewals, bindings, reminders (issue 5). Placeholder.
SELECT 1;
