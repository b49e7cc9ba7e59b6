-- The query API filters by org and then action or status, newest first.
CREATE INDEX audit_log_org_action_seq ON audit_log (org_id, action, seq);

CREATE INDEX audit_log_org_status_seq ON audit_log (org_id, status, seq);
