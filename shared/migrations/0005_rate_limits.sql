-- GCRA state: one theoretical arrival time (µs) per key (see `rate_limit`).
CREATE TABLE rate_limits (key TEXT PRIMARY KEY, tat INTEGER NOT NULL) STRICT, WITHOUT ROWID;
