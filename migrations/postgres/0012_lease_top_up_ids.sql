-- The id of each lease's last top-up. A top-up whose COMMIT was sent but
-- whose answer never came (its connection lost, or too slow) is read back
-- by this id, so that what it set aside is neither lost to the lease nor
-- left reserved with no lease in memory to return it.
ALTER TABLE credit_leases ADD COLUMN top_up_id TEXT;
ALTER TABLE api_key_budget_leases ADD COLUMN top_up_id TEXT;
