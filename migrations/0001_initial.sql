-- vpcd schema v1: one table per object kind. Common columns on every kind: id (lower-case UUID text), name, labels
-- (JSON object text), revision, created_at, updated_at (RFC 3339 UTC, microseconds, so text order is time order) and
-- spec (the object's canonical writable fields as JSON, the API's source of truth). Real columns duplicate what
-- foreign keys, UNIQUE constraints and the reconciler need. Side tables hold the per-parent uniqueness of addresses.

CREATE TABLE vpcs (
  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{}',
  revision INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, spec TEXT NOT NULL,
  vni INTEGER NOT NULL UNIQUE CHECK (vni BETWEEN 1 AND 16777215),
  mtu INTEGER NOT NULL
);

CREATE TABLE subnets (
  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{}',
  revision INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, spec TEXT NOT NULL,
  vpc_id TEXT NOT NULL REFERENCES vpcs(id),
  cidr TEXT NOT NULL,
  gateway TEXT NOT NULL
);
CREATE INDEX subnets_vpc ON subnets(vpc_id);

CREATE TABLE security_groups (
  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{}',
  revision INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, spec TEXT NOT NULL,
  vpc_id TEXT NOT NULL REFERENCES vpcs(id)
);
CREATE INDEX security_groups_vpc ON security_groups(vpc_id);

-- A rule of group sg_id that names remote_group_id as its peer: keeps the peer from being deleted while named.
CREATE TABLE security_group_refs (
  sg_id TEXT NOT NULL REFERENCES security_groups(id) ON DELETE CASCADE,
  remote_group_id TEXT NOT NULL REFERENCES security_groups(id),
  PRIMARY KEY (sg_id, remote_group_id)
);
CREATE INDEX security_group_refs_remote ON security_group_refs(remote_group_id);

CREATE TABLE nics (
  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{}',
  revision INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, spec TEXT NOT NULL,
  vpc_id TEXT NOT NULL REFERENCES vpcs(id),
  subnet_id TEXT NOT NULL REFERENCES subnets(id),
  mac TEXT NOT NULL,
  backend_key TEXT NOT NULL UNIQUE,  -- 'tap:IFNAME' or 'netns:NETNS/IFNAME': one OS object per NIC
  owner_uid INTEGER, owner_gid INTEGER,  -- tap owner/group resolved when written
  state TEXT NOT NULL DEFAULT 'down' CHECK (state IN ('up', 'down', 'error')),  -- written by the reconciler
  state_detail TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX nics_vpc ON nics(vpc_id);
CREATE INDEX nics_subnet ON nics(subnet_id);

-- NIC addresses: unique per subnet.
CREATE TABLE nic_ips (
  nic_id TEXT NOT NULL REFERENCES nics(id) ON DELETE CASCADE,
  subnet_id TEXT NOT NULL REFERENCES subnets(id),
  ip TEXT NOT NULL,
  PRIMARY KEY (subnet_id, ip)
);
CREATE INDEX nic_ips_nic ON nic_ips(nic_id);

CREATE TABLE nic_security_groups (
  nic_id TEXT NOT NULL REFERENCES nics(id) ON DELETE CASCADE,
  sg_id TEXT NOT NULL REFERENCES security_groups(id),
  PRIMARY KEY (nic_id, sg_id)
);
CREATE INDEX nic_security_groups_sg ON nic_security_groups(sg_id);

CREATE TABLE uplinks (
  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{}',
  revision INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, spec TEXT NOT NULL,
  ifname TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('underlay', 'external', 'both'))
);

CREATE TABLE vtep_peers (
  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{}',
  revision INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, spec TEXT NOT NULL,
  vpc_id TEXT NOT NULL REFERENCES vpcs(id),
  underlay_ip TEXT NOT NULL,
  UNIQUE (vpc_id, underlay_ip)
);

CREATE TABLE remote_nics (
  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{}',
  revision INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, spec TEXT NOT NULL,
  vpc_id TEXT NOT NULL REFERENCES vpcs(id),
  mac TEXT NOT NULL,
  underlay_ip TEXT NOT NULL
);
CREATE INDEX remote_nics_vpc ON remote_nics(vpc_id);

-- MACs of local and remote NICs: unique per VPC. owner_id is the nic or remote-nic holding it.
CREATE TABLE vpc_macs (
  vpc_id TEXT NOT NULL REFERENCES vpcs(id),
  mac TEXT NOT NULL,
  owner_id TEXT NOT NULL,
  PRIMARY KEY (vpc_id, mac)
);
CREATE INDEX vpc_macs_owner ON vpc_macs(owner_id);

CREATE TABLE routes (
  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{}',
  revision INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, spec TEXT NOT NULL,
  vpc_id TEXT NOT NULL REFERENCES vpcs(id),
  destination TEXT NOT NULL,
  UNIQUE (vpc_id, destination)
);

CREATE TABLE nat_gateways (
  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{}',
  revision INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, spec TEXT NOT NULL,
  vpc_id TEXT NOT NULL REFERENCES vpcs(id),
  uplink_id TEXT NOT NULL REFERENCES uplinks(id),
  external_ip TEXT NOT NULL
);
CREATE INDEX nat_gateways_vpc ON nat_gateways(vpc_id);
CREATE INDEX nat_gateways_uplink ON nat_gateways(uplink_id);

CREATE TABLE floating_ips (
  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{}',
  revision INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, spec TEXT NOT NULL,
  uplink_id TEXT NOT NULL REFERENCES uplinks(id),
  external_ip TEXT NOT NULL,
  nic_id TEXT UNIQUE REFERENCES nics(id)  -- at most one floating IP per NIC; NULL = unassigned
);
CREATE INDEX floating_ips_uplink ON floating_ips(uplink_id);

-- External addresses of NAT gateways and floating IPs: unique per uplink. owner_id is the object holding it.
CREATE TABLE uplink_ips (
  uplink_id TEXT NOT NULL REFERENCES uplinks(id),
  ip TEXT NOT NULL,
  owner_id TEXT NOT NULL,
  PRIMARY KEY (uplink_id, ip)
);
CREATE INDEX uplink_ips_owner ON uplink_ips(owner_id);

-- API tokens: only a salted hash is stored.
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
  salt_hex TEXT NOT NULL,
  hash_hex TEXT NOT NULL,
  created_at TEXT NOT NULL
);

-- Audit log of API writes, trimmed to the newest 10,000 rows.
CREATE TABLE events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time TEXT NOT NULL,
  token_id TEXT NOT NULL,
  method TEXT NOT NULL,
  kind TEXT NOT NULL,
  object_id TEXT NOT NULL,
  status INTEGER NOT NULL
);
