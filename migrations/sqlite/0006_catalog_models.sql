-- Catalog models added, changed or disabled at runtime through
-- `POST`/`PATCH`/`DELETE /api/v1/models`. The effective catalog is the
-- configuration's (or the built-in one) with these rows laid over it: a row
-- replaces the model of its id, a disabled row hides it. Rows are never
-- deleted; every replica polls `updated_at` and rebuilds on a change.
CREATE TABLE catalog_models (
    id          TEXT PRIMARY KEY,
    -- The model as a JSON object: the fields of a configuration `models`
    -- entry, with prices in micro-dollars (`input_per_mtok_usd_micros`, …).
    definition  TEXT NOT NULL,
    disabled    BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    -- Milliseconds; every change moves it forward (at least by one).
    updated_at  BIGINT NOT NULL
);
