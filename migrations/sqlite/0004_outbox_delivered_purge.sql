-- The worker deletes delivered messages past their retention, oldest first; this index
-- finds them without reading the pending and dead ones.
CREATE INDEX outbox_delivered ON outbox (done_at) WHERE state = 'delivered';
