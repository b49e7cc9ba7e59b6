-- The default template list order (`GET /templates`: `lower(display_name), id` within an org) as
-- an index, so a first page reads 50 rows instead of sorting the org's whole template set
-- (measured by `scripts/bench catalog`: ~20 ms a page at 10k templates without it).
CREATE INDEX templates_org_display ON templates (org_id, lower(display_name), id);
