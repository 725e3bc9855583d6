-- The state of each uplink as the datapath last saw it (written by the reconciler, like nics.state): 'up' (port open,
-- carrier), 'down' (no carrier, or not driven yet), 'error' (the interface could not be opened; state_detail says why).
ALTER TABLE uplinks ADD COLUMN state TEXT NOT NULL DEFAULT 'down' CHECK (state IN ('up', 'down', 'error'));
ALTER TABLE uplinks ADD COLUMN state_detail TEXT NOT NULL DEFAULT 'pending';
