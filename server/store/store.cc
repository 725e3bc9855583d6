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
      out.nics.push_back(std::move(n));
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

}  // namespace vpcd::store
