-- The audit row is written unsealed (`prev_hash` and `hash` empty) by one insert on the request
-- path; the sealer fills both in later, in `seq` order ([`crate::audit::chain::seal`]). So the
-- update trigger now refuses every column but those two, and those two may change only once,
-- from empty to a value.

DROP TRIGGER audit_log_no_update;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE OF seq, id, request_id, ts, principal,
        user_id, agent_id, org_id, method, path, action, resource_type, resource_id, status,
        client_ip, user_agent, duration_ms, error, body, target_org_id ON audit_log
     BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TRIGGER audit_log_seal_once BEFORE UPDATE OF prev_hash, hash ON audit_log
     WHEN OLD.hash <> '' OR NEW.hash = '' OR NEW.prev_hash = ''
     BEGIN SELECT RAISE(ABORT, 'an audit row is sealed once'); END;
