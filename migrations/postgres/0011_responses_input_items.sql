-- The input items of each stored response, for
-- `GET /v1/responses/{id}/input_items` (JSON array, in the order sent, each
-- with its id). Responses stored before this migration list none.
ALTER TABLE stored_responses ADD COLUMN input_items TEXT NOT NULL DEFAULT '[]';
