-- Every list filter gets an index that serves it in the list's own order, so a page reads
-- only the rows it returns (plus those its residual filters skip), never a whole table.

-- Records filtered by `modified_*` are paged in change order: (modified_at, id) is one range.
DROP INDEX records_modified;
CREATE INDEX records_changed ON records(connection_id, entity, modified_at, id);

-- Events of one connection, or of one type, oldest first.
CREATE INDEX events_connection ON events(connection_id, id);
CREATE INDEX events_type ON events(org_id, type, id);

-- An endpoint's deliveries of one status, newest first.
CREATE INDEX webhook_deliveries_status ON webhook_deliveries(endpoint_id, status, id);

-- An organization's attempts, newest first; of one endpoint or delivery, the organization
-- is a second equality of their indexes (so a planner without statistics still prefers
-- them to the organization's), and they keep serving deletions by endpoint or delivery.
CREATE INDEX webhook_attempts_org ON webhook_attempts(org_id, id);
DROP INDEX webhook_attempts_endpoint;
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts(endpoint_id, org_id, id);
DROP INDEX webhook_attempts_delivery;
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, org_id, id);
