// Store: open + migrate, the reconciler's queries and tokens; see store.h.
#include "server/store/store.h"

#include <sys/time.h>

#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace vpcd::store {

std::string now_rfc3339() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, long(ts.tv_nsec / 1000));
  return buf;
}

Store::Store(const std::string& db_path, const std::string& migrations_dir) : db_(std::make_unique<Db>(db_path)) {
  migrate(*db_, migrations_dir);
}

int Store::schema_version() {
  auto s = session();
  return store::schema_version(s.db());
}

dp::DesiredState Store::load_desired_state() {
  auto s = session();
  Db& db = s.db();
  Transaction tx(db, false);  // one consistent snapshot across the queries
  dp::DesiredState out;
  std::map<std::string, size_t> vpc_index;
  {
    Query q(db, "SELECT id, vni, mtu, spec FROM vpcs ORDER BY created_at, id");
    while (q.next()) {
      dp::VpcSpec v;
      v.id = q.text(0);
      v.vni = uint32_t(q.int64(1));
      v.mtu = uint32_t(q.int64(2));
      auto spec = nlohmann::json::parse(q.text(3), nullptr, false);
      if (spec.is_object() && spec.contains("cidrs") && spec["cidrs"].is_array())
        for (const auto& c : spec["cidrs"])
          if (c.is_string())
            if (auto p = Ipv4Prefix::parse(c.get<std::string>())) v.cidrs.push_back(*p);
      vpc_index[v.id] = out.vpcs.size();
      out.vpcs.push_back(std::move(v));
    }
  }
  {
    Query q(db, "SELECT id, vpc_id, cidr, gateway FROM subnets ORDER BY created_at, id");
    while (q.next()) {
      dp::SubnetSpec sn;
      sn.id = q.text(0);
      auto cidr = Ipv4Prefix::parse(q.text(2));
      auto gw = Ipv4Addr::parse(q.text(3));
      auto it = vpc_index.find(q.text(1));
      if (!cidr || !gw || it == vpc_index.end()) continue;  // the API never writes such rows
      sn.cidr = *cidr;
      sn.gateway = *gw;
      out.vpcs[it->second].subnets.push_back(std::move(sn));
    }
  }
  {
    Query q(db,
            "SELECT id, vpc_id, subnet_id, mac, spec, owner_uid, owner_gid FROM nics ORDER BY created_at, id");
    while (q.next()) {
      dp::NicSpec n;
      n.id = q.text(0);
      n.vpc_id = q.text(1);
      n.subnet_id = q.text(2);
      auto mac = MacAddr::parse(q.text(3));
      auto spec = nlohmann::json::parse(q.text(4), nullptr, false);
      if (!mac || !spec.is_object()) continue;
      n.mac = *mac;
      n.port_security = spec.value("port_security", true);
      for (const auto& ip : spec.value("ips", nlohmann::json::array())) {
        if (auto a = Ipv4Addr::parse(ip.get<std::string>())) n.ips.push_back(*a);
      }
      const auto& be = spec["backend"];
      std::string type = be.value("type", "");
      if (type == "tap") {
        dp::TapBackend tap;
        tap.ifname = be.value("ifname", "");
        tap.queues = be.value("queues", uint16_t(1));
        if (!q.is_null(5)) tap.owner = uid_t(q.int64(5));
        if (!q.is_null(6)) tap.group = gid_t(q.int64(6));
        n.backend = std::move(tap);
      } else if (type == "netns") {
        dp::NetnsBackend ns;
        ns.netns = be.value("netns", "");
        ns.ifname = be.value("ifname", "eth0");
        n.backend = std::move(ns);
      } else if (type == "vhost-user") {
        dp::VhostUserBackend vu;
        vu.socket = be.value("socket", "");
        vu.server = be.value("mode", "client") == "server";
        vu.queues = be.value("queues", uint16_t(1));
        if (!q.is_null(5)) vu.owner = uid_t(q.int64(5));
        if (!q.is_null(6)) vu.group = gid_t(q.int64(6));
        n.backend = std::move(vu);
      } else {
        continue;  // other backends are refused by the API until the datapath has them
      }
      if (spec.contains("security_group_ids") && spec["security_group_ids"].is_array())
        for (const auto& g : spec["security_group_ids"])
          if (g.is_string()) n.security_group_ids.push_back(g.get<std::string>());
      out.nics.push_back(std::move(n));
    }
  }
  {
    Query q(db, "SELECT id, vpc_id, spec FROM routes ORDER BY created_at, id");
    while (q.next()) {
      dp::RouteSpec r;
      r.id = q.text(0);
      r.vpc_id = q.text(1);
      auto spec = nlohmann::json::parse(q.text(2), nullptr, false);
      if (!spec.is_object() || !spec.contains("destination") || !spec["destination"].is_string() ||
          !spec.contains("next_hop") || !spec["next_hop"].is_string())
        continue;  // the API never writes such rows
      auto dst = Ipv4Prefix::parse(spec["destination"].get<std::string>());
      const std::string hop = spec["next_hop"].get<std::string>();
      if (!dst) continue;
      r.destination = *dst;
      if (hop == "blackhole") {
        r.next_hop_kind = dp::NextHopKind::kBlackhole;
      } else if (hop == "nat-gateway") {
        r.next_hop_kind = dp::NextHopKind::kNatGateway;
      } else if (auto a = Ipv4Addr::parse(hop)) {
        r.next_hop_kind = dp::NextHopKind::kAddress;
        r.next_hop = *a;
      } else {
        continue;
      }
      out.routes.push_back(std::move(r));
    }
  }
  {
    Query q(db, "SELECT id, vpc_id, spec FROM security_groups ORDER BY created_at, id");
    while (q.next()) {
      dp::SecurityGroupSpec g;
      g.id = q.text(0);
      g.vpc_id = q.text(1);
      auto spec = nlohmann::json::parse(q.text(2), nullptr, false);
      if (!spec.is_object()) continue;
      for (const auto& r : spec.value("rules", nlohmann::json::array())) {
        if (!r.is_object()) continue;
        dp::SecurityRuleSpec rs;
        rs.direction = r.value("direction", "") == "egress" ? dp::RuleDirection::kEgress : dp::RuleDirection::kIngress;
        const std::string proto = r.value("protocol", "any");
        rs.protocol = proto == "tcp"    ? dp::RuleProtocol::kTcp
                      : proto == "udp"  ? dp::RuleProtocol::kUdp
                      : proto == "icmp" ? dp::RuleProtocol::kIcmp
                                        : dp::RuleProtocol::kAny;
        rs.port_min = r.value("port_min", uint16_t(0));
        rs.port_max = r.value("port_max", uint16_t(65535));
        if (r.contains("remote_group_id") && r["remote_group_id"].is_string()) {
          rs.remote_group_id = r["remote_group_id"].get<std::string>();
        } else if (auto c = Ipv4Prefix::parse(r.value("cidr", "0.0.0.0/0"))) {
          rs.cidr = *c;
        } else {
          continue;
        }
        g.rules.push_back(std::move(rs));
      }
      out.security_groups.push_back(std::move(g));
    }
  }
  // The overlay's objects (issue 8): uplinks, VTEP peers, remote NICs.
  {
    Query q(db, "SELECT id, ifname, role, spec FROM uplinks ORDER BY created_at, id");
    while (q.next()) {
      dp::UplinkSpec u;
      u.id = q.text(0);
      u.ifname = q.text(1);
      const std::string role = q.text(2);
      u.role = role == "underlay" ? dp::UplinkRole::kUnderlay
               : role == "external" ? dp::UplinkRole::kExternal
                                    : dp::UplinkRole::kBoth;
      auto spec = nlohmann::json::parse(q.text(3), nullptr, false);
      if (!spec.is_object() || !spec.contains("address") || !spec["address"].is_string()) continue;
      auto addr = Ipv4Prefix::parse(spec["address"].get<std::string>(), /*strict=*/false);
      if (!addr) continue;
      u.address = *addr;
      if (spec.contains("gateway") && spec["gateway"].is_string())
        if (auto gw = Ipv4Addr::parse(spec["gateway"].get<std::string>())) u.gateway = *gw;
      out.uplinks.push_back(std::move(u));
    }
  }
  {
    Query q(db, "SELECT id, vpc_id, underlay_ip FROM vtep_peers ORDER BY created_at, id");
    while (q.next()) {
      dp::VtepPeerSpec p;
      p.id = q.text(0);
      p.vpc_id = q.text(1);
      auto ip = Ipv4Addr::parse(q.text(2));
      if (!ip) continue;
      p.underlay_ip = *ip;
      out.vtep_peers.push_back(std::move(p));
    }
  }
  {
    Query q(db, "SELECT id, vpc_id, mac, underlay_ip, spec FROM remote_nics ORDER BY created_at, id");
    while (q.next()) {
      dp::RemoteNicSpec r;
      r.id = q.text(0);
      r.vpc_id = q.text(1);
      auto mac = MacAddr::parse(q.text(2));
      auto ip = Ipv4Addr::parse(q.text(3));
      auto spec = nlohmann::json::parse(q.text(4), nullptr, false);
      if (!mac || !ip || !spec.is_object()) continue;
      r.mac = *mac;
      r.underlay_ip = *ip;
      for (const auto& a : spec.value("ips", nlohmann::json::array()))
        if (a.is_string())
          if (auto v = Ipv4Addr::parse(a.get<std::string>())) r.ips.push_back(*v);
      out.remote_nics.push_back(std::move(r));
    }
  }
  return out;
}

bool Store::set_nic_state(const std::string& nic_id, dp::NicStatus status, const std::string& detail) {
  auto s = session();
  Query q(s.db(), "UPDATE nics SET state = ?, state_detail = ? WHERE id = ? AND (state != ? OR state_detail != ?)",
          std::string(dp::nic_status_name(status)), detail, nic_id, std::string(dp::nic_status_name(status)), detail);
  q.run();
  return s.db().changes() > 0;
}

bool Store::set_uplink_state(const std::string& uplink_id, dp::NicStatus status, const std::string& detail) {
  auto s = session();
  Query q(s.db(), "UPDATE uplinks SET state = ?, state_detail = ? WHERE id = ? AND (state != ? OR state_detail != ?)",
          std::string(dp::nic_status_name(status)), detail, uplink_id, std::string(dp::nic_status_name(status)),
          detail);
  q.run();
  return s.db().changes() > 0;
}

void Store::add_token(const TokenRecord& t) {
  auto s = session();
  Query q(s.db(), "INSERT INTO tokens (id, role, salt_hex, hash_hex, created_at) VALUES (?, ?, ?, ?, ?)", t.id,
          t.role, t.salt_hex, t.hash_hex, now_rfc3339());
  q.run();
}

std::optional<TokenRecord> Store::find_token(const std::string& id) {
  auto s = session();
  Query q(s.db(), "SELECT id, role, salt_hex, hash_hex FROM tokens WHERE id = ?", id);
  if (!q.next()) return std::nullopt;
  return TokenRecord{q.text(0), q.text(1), q.text(2), q.text(3)};
}

bool Store::remove_token(const std::string& id) {
  auto s = session();
  Query q(s.db(), "DELETE FROM tokens WHERE id = ?", id);
  q.run();
  return s.db().changes() > 0;
}

std::vector<TokenRecord> Store::list_tokens() {
  auto s = session();
  Query q(s.db(), "SELECT id, role, salt_hex, hash_hex FROM tokens ORDER BY created_at, id");
  std::vector<TokenRecord> out;
  while (q.next()) out.push_back(TokenRecord{q.text(0), q.text(1), q.text(2), q.text(3)});
  return out;
}

std::vector<Store::TokenInfo> Store::token_infos() {
  auto s = session();
  Query q(s.db(), "SELECT id, role, created_at FROM tokens ORDER BY created_at, id");
  std::vector<TokenInfo> out;
  while (q.next()) out.push_back(TokenInfo{q.text(0), q.text(1), q.text(2)});
  return out;
}

TokenReader::TokenReader(const std::string& db_path) : db_(std::make_unique<Db>(db_path)) {}

std::optional<TokenRecord> TokenReader::find(const std::string& id) {
  std::scoped_lock lk(mu_);
  Query q(*db_, "SELECT id, role, salt_hex, hash_hex FROM tokens WHERE id = ?", id);
  if (!q.next()) return std::nullopt;
  return TokenRecord{q.text(0), q.text(1), q.text(2), q.text(3)};
}

}  // namespace vpcd::store
