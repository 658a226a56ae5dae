-- Replays (`recover`) are delivered one at a time per endpoint, in event order, whichever
-- process claims them: `replay_seq` numbers an endpoint's recovered deliveries in that order,
-- and a pending one may be claimed only while none with a smaller number is pending. NULL for
-- live traffic, and cleared once a replayed delivery's attempt ends.
ALTER TABLE webhook_deliveries ADD COLUMN replay_seq INTEGER;
CREATE INDEX webhook_deliveries_replay ON webhook_deliveries(endpoint_id, replay_seq)
    WHERE status = 'pending' AND replay_seq IS NOT NULL;
