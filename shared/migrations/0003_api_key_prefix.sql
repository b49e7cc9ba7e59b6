-- Personal access tokens: the first characters of the token (`ssp_` + 4 random ones, 24 bits of
-- 256) so owners can recognise a key in lists, and an index in the order of the owner's list
-- (newest first) that also serves every per-user lookup. Older keys have no prefix (NULL).

ALTER TABLE api_keys ADD COLUMN key_prefix TEXT;

CREATE INDEX api_keys_user_created ON api_keys (user_id, created_at, id);

-- Covered by the index above (same leading column).
DROP INDEX api_keys_user;
