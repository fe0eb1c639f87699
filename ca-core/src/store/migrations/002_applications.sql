-- 2: applications, materials, orders, deliveries, outbox (issue 5). Placeholder.
SELECT 1;
