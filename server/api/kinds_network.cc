// VPCs, subnets and NICs: the kinds the datapath carries today (see kinds.h). Validation per API.md: CIDRs canonical
// and nested, VNI unique (allocated when absent), gateway inside its subnet, NIC addresses inside the subnet and
// free (allocated when absent), MAC unique per VPC (derived from the id when absent), backends checked.
#include <set>

#include "datapath/router_mac.h"
#include "server/api/kinds.h"
#include "server/api/schema.h"

namespace vpcd::api {

namespace {

constexpr int64_t kMaxVni = 16777215;
constexpr size_t kMaxVpcCidrs = 16;
constexpr size_t kMaxNicIps = 16;
constexpr size_t kMaxNicGroups = 16;
constexpr int64_t kMaxQueues = 16;
constexpr int64_t kMaxVhostQueues = 8;  // queue pairs of a vhost-user NIC (datapath/io/vhost_user kMaxQueuePairs)
constexpr uint32_t kMacAttempts = 16;

bool reserved_range(const Ipv4Prefix& p) {
  static const Ipv4Prefix kReserved[] = {*Ipv4Prefix::parse("0.0.0.0/8"), *Ipv4Prefix::parse("127.0.0.0/8"),
                                         *Ipv4Prefix::parse("224.0.0.0/3")};
  for (const auto& r : kReserved)
    if (r.overlaps(p)) return true;
  return false;
}

int64_t allocate_vni(Db& db) {
  {
    Query q(db, "SELECT COALESCE(MAX(vni), 0) FROM vpcs");
    q.next();
    if (q.int64(0) < kMaxVni) return q.int64(0) + 1;
  }
  Query q(db, "SELECT vni FROM vpcs ORDER BY vni");
  int64_t expect = 1;
  while (q.next() && q.int64(0) == expect) ++expect;
  if (expect > kMaxVni) conflict("vni", "every VNI is taken");
  return expect;
}

// Usable host addresses of a subnet: all but network and broadcast for /30 and shorter.
bool is_host_of(const Ipv4Prefix& p, Ipv4Addr a) {
  if (!p.contains(a)) return false;
  if (p.len <= 30 && (a == p.addr || a == p.broadcast())) return false;
  return true;
}

}  // namespace

const json& required(const json& in, const std::string& field, const std::string& prefix) {
  const json* v = member(in, field);
  std::string path = prefix.empty() ? field : prefix + "." + field;
  if (!v) bad_request(path, path + " is required");
  return *v;
}

std::vector<Ipv4Prefix> vpc_cidrs(const json& vpc_spec) {
  std::vector<Ipv4Prefix> out;
  for (const auto& c : vpc_spec.value("cidrs", json::array()))
    if (auto p = Ipv4Prefix::parse(c.get<std::string>())) out.push_back(*p);
  return out;
}

std::string join_cidrs(const std::vector<Ipv4Prefix>& cidrs) {
  std::string s;
  for (const auto& c : cidrs) s += (s.empty() ? "" : ", ") + c.to_string();
  return s;
}

bool in_any(const std::vector<Ipv4Prefix>& cidrs, Ipv4Addr a) {
  for (const auto& c : cidrs)
    if (c.contains(a)) return true;
  return false;
}

MacAddr vpc_router_mac(Db& db, const std::string& vpc_id) {
  Query q(db, "SELECT vni FROM vpcs WHERE id = ?", vpc_id);
  if (!q.next()) unprocessable("vpc_id", "VPC " + vpc_id + " does not exist");
  return router_mac_for(uint32_t(q.int64(0)));
}

void check_not_router_mac(const MacAddr& mac, const MacAddr& router_mac) {
  if (mac == router_mac)
    conflict("mac", "MAC " + mac.to_string() + " is the MAC of the VPC's router (derived from its VNI: " +
                        "02:76:70 and the VNI in hex); a guest with it would be unreachable");
}

KindSpec vpc_kind() {
  KindSpec k;
  k.kind = "vpcs";
  k.table = "vpcs";
  k.singular = "VPC";
  k.schema_name = "Vpc";
  k.description = "An isolated virtual network (one L2 domain per subnet, one VNI across boxes)";
  k.needs = dp::Capability::kVpcs;
  k.fields = {
      {"cidrs", schema::array(schema::cidr(), 1, kMaxVpcCidrs, true), true, {}},
      {"vni", schema::with_description(schema::integer(1, kMaxVni), "allocated when absent; unique on the box"), false,
       {}},
      {"mtu", schema::with_description(schema::integer(576, 9000), "guest MTU (default 1450)"), false, {}},
  };
  for (const auto& [kind, table] : std::vector<std::pair<std::string, std::string>>{
           {"subnets", "subnets"}, {"security-groups", "security_groups"}, {"vtep-peers", "vtep_peers"},
           {"remote-nics", "remote_nics"}, {"routes", "routes"}, {"nat-gateways", "nat_gateways"}})
    k.dependents.push_back({kind, "SELECT id FROM " + table + " WHERE vpc_id = ?1 ORDER BY created_at LIMIT 10"});
  k.normalize = [](Db& db, const std::string& id, const json& in, const json* old) {
    Normalized n;
    const json& cidrs = required(in, "cidrs");
    if (!cidrs.is_array() || cidrs.empty() || cidrs.size() > kMaxVpcCidrs)
      bad_request("cidrs", "cidrs must be a list of 1.." + std::to_string(kMaxVpcCidrs) + " IPv4 CIDRs");
    std::vector<Ipv4Prefix> prefixes;
    for (size_t i = 0; i < cidrs.size(); ++i) {
      std::string path = "cidrs[" + std::to_string(i) + "]";
      Ipv4Prefix p = need_cidr(cidrs[i], path);
      if (p.len < 8 || p.len > 30) bad_request(path, path + ": the prefix length must be 8..30");
      if (reserved_range(p)) bad_request(path, path + ": " + p.to_string() + " overlaps a reserved range");
      for (const auto& q : prefixes)
        if (q.overlaps(p)) bad_request(path, path + ": " + p.to_string() + " overlaps " + q.to_string());
      prefixes.push_back(p);
      n.spec["cidrs"].push_back(p.to_string());
    }
    int64_t vni;
    if (const json* v = member(in, "vni")) {
      vni = need_int(*v, "vni", 1, kMaxVni);
      Query q(db, "SELECT id FROM vpcs WHERE vni = ? AND id != ?", vni, id);
      if (q.next()) conflict("vni", "VNI " + std::to_string(vni) + " is taken by VPC " + q.text(0));
    } else if (old) {
      vni = (*old)["vni"].get<int64_t>();
    } else {
      vni = allocate_vni(db);
    }
    if (old && vni != (*old)["vni"].get<int64_t>()) {  // the router MAC follows the VNI
      Query q(db, "SELECT owner_id FROM vpc_macs WHERE vpc_id = ? AND mac = ?", id,
              router_mac_for(uint32_t(vni)).to_string());
      if (q.next())
        conflict("vni", "VNI " + std::to_string(vni) + " would give the VPC's router the MAC " +
                            router_mac_for(uint32_t(vni)).to_string() + " of " + q.text(0));
    }
    int64_t mtu = 1450;
    if (const json* v = member(in, "mtu")) mtu = need_int(*v, "mtu", 576, 9000);
    check_underlay_mtu(db, "mtu", id, mtu, "");
    if (old) {  // every subnet must stay inside the new CIDRs
      Query q(db, "SELECT id, cidr FROM subnets WHERE vpc_id = ?", id);
      while (q.next()) {
        auto sn = Ipv4Prefix::parse(q.text(1));
        bool inside = false;
        for (const auto& p : prefixes) inside = inside || (sn && p.contains(*sn));
        if (!inside) conflict("cidrs", "subnet " + q.text(0) + " (" + q.text(1) + ") would be outside the VPC's CIDRs");
      }
    }
    n.spec["vni"] = vni;
    n.spec["mtu"] = mtu;
    n.columns = {{"vni", vni}, {"mtu", mtu}};
    return n;
  };
  return k;
}

KindSpec subnet_kind() {
  KindSpec k;
  k.kind = "subnets";
  k.table = "subnets";
  k.singular = "subnet";
  k.schema_name = "Subnet";
  k.description = "An IPv4 subnet of a VPC";
  k.needs = dp::Capability::kSubnets;
  k.fields = {
      {"vpc_id", schema::uuid(), true, {}},
      {"cidr", schema::cidr(), true, {}},
      {"gateway", schema::with_description(schema::ipv4(), "default: the first host address"), false, {}},
  };
  k.immutable = {"vpc_id", "cidr"};
  k.filters = {"vpc_id"};
  k.dependents = {{"nics", "SELECT id FROM nics WHERE subnet_id = ?1 ORDER BY created_at LIMIT 10"}};
  k.normalize = [](Db& db, const std::string& id, const json& in, const json* old) {
    Normalized n;
    json vpc = need_ref(db, in, "vpc_id", "vpcs", "VPC");
    std::string vpc_id = in["vpc_id"];
    Ipv4Prefix cidr = need_cidr(required(in, "cidr"), "cidr");
    if (cidr.len < 8 || cidr.len > 30) bad_request("cidr", "cidr: the prefix length must be 8..30");
    auto cidrs = vpc_cidrs(vpc);
    bool inside = false;
    for (const auto& p : cidrs) inside = inside || p.contains(cidr);
    if (!inside)
      unprocessable("cidr", "cidr " + cidr.to_string() + " is not inside the VPC's CIDRs (" + join_cidrs(cidrs) + ")");
    {
      Query q(db, "SELECT id, cidr FROM subnets WHERE vpc_id = ? AND id != ?", vpc_id, id);
      while (q.next()) {
        auto other = Ipv4Prefix::parse(q.text(1));
        if (other && other->overlaps(cidr))
          conflict("cidr", "cidr " + cidr.to_string() + " overlaps subnet " + q.text(0) + " (" + q.text(1) + ")");
      }
    }
    Ipv4Addr gw;
    if (const json* v = member(in, "gateway")) {
      gw = need_ipv4(*v, "gateway");
    } else if (old) {
      gw = *Ipv4Addr::parse((*old)["gateway"].get<std::string>());
    } else {
      gw = Ipv4Addr{cidr.addr.v + 1};
    }
    if (!is_host_of(cidr, gw))
      bad_request("gateway", "gateway " + gw.to_string() + " must be a host address of " + cidr.to_string());
    if (old) {
      Query q(db, "SELECT nic_id FROM nic_ips WHERE subnet_id = ? AND ip = ?", id, gw.to_string());
      if (q.next()) conflict("gateway", "gateway " + gw.to_string() + " is in use by NIC " + q.text(0));
    }
    n.spec["vpc_id"] = vpc_id;
    n.spec["cidr"] = cidr.to_string();
    n.spec["gateway"] = gw.to_string();
    n.columns = {{"vpc_id", vpc_id}, {"cidr", cidr.to_string()}, {"gateway", gw.to_string()}};
    return n;
  };
  return k;
}

namespace {

struct BackendResult {
  json spec;
  std::string key;  // backend_key column
  std::string key_field;
  std::optional<int64_t> uid, gid;
};

// backend.owner / backend.group (a tap device's or a vhost-user server socket's): names that must exist on this host.
void backend_owner_group(const json& be, BackendResult& r) {
  if (const json* v = member(be, "owner")) {
    std::string owner = need_string(*v, "backend.owner", 64);
    auto uid = lookup_user(owner);
    if (!uid) unprocessable("backend.owner", "user \"" + owner + "\" does not exist on this host");
    r.uid = int64_t(*uid);
    r.spec["owner"] = owner;
  }
  if (const json* v = member(be, "group")) {
    std::string grp = need_string(*v, "backend.group", 64);
    auto gid = lookup_group(grp);
    if (!gid) unprocessable("backend.group", "group \"" + grp + "\" does not exist on this host");
    r.gid = int64_t(*gid);
    r.spec["group"] = grp;
  }
}

BackendResult normalize_backend(const json& be) {
  BackendResult r;
  if (!be.is_object()) bad_request("backend", "backend must be an object with a \"type\"");
  std::string type = need_enum(required(be, "type", "backend"), "backend.type", {"tap", "netns", "vhost-user"});
  r.spec["type"] = type;
  if (type == "tap") {
    only_fields(be, "backend", {"type", "ifname", "queues", "owner", "group"});
    if (!dp::carries(dp::Capability::kNicTap)) not_carried(dp::Capability::kNicTap, "backend.type");
    std::string ifname = need_ifname(required(be, "ifname", "backend"), "backend.ifname");
    int64_t queues = 1;
    if (const json* v = member(be, "queues")) queues = need_int(*v, "backend.queues", 1, kMaxQueues);
    r.spec["ifname"] = ifname;
    r.spec["queues"] = queues;
    backend_owner_group(be, r);
    r.key = "tap:" + ifname;
    r.key_field = "backend.ifname";
  } else if (type == "netns") {
    only_fields(be, "backend", {"type", "netns", "ifname"});
    if (!dp::carries(dp::Capability::kNicNetns)) not_carried(dp::Capability::kNicNetns, "backend.type");
    std::string ns = need_netns_name(required(be, "netns", "backend"), "backend.netns");
    std::string ifname = "eth0";
    if (const json* v = member(be, "ifname")) ifname = need_ifname(*v, "backend.ifname");
    r.spec["netns"] = ns;
    r.spec["ifname"] = ifname;
    r.key = "netns:" + ns + "/" + ifname;
    r.key_field = "backend.netns";
  } else {
    only_fields(be, "backend", {"type", "socket", "mode", "queues", "owner", "group"});
    // sun_path holds 107 bytes plus the terminating NUL.
    std::string sock = need_string(required(be, "socket", "backend"), "backend.socket", 107);
    if (sock.empty() || sock[0] != '/') bad_request("backend.socket", "backend.socket must be an absolute path");
    for (unsigned char c : sock)
      if (c <= ' ' || c == 0x7f) bad_request("backend.socket", "backend.socket must not contain spaces or control characters");
    if (sock.find("/../") != std::string::npos || sock.find("/./") != std::string::npos || sock.find("//") != std::string::npos ||
        sock.ends_with("/..") || sock.ends_with("/.") || sock.back() == '/')
      bad_request("backend.socket", "backend.socket must be a normalised absolute path to a file");
    std::string mode = "client";
    if (const json* v = member(be, "mode")) mode = need_enum(*v, "backend.mode", {"server", "client"});
    int64_t queues = 1;
    if (const json* v = member(be, "queues")) queues = need_int(*v, "backend.queues", 1, kMaxVhostQueues);
    if ((member(be, "owner") || member(be, "group")) && mode != "server")
      unprocessable(member(be, "owner") ? "backend.owner" : "backend.group",
                    "owner and group apply to a socket vpcd creates (mode \"server\")");
    backend_owner_group(be, r);
    r.spec["socket"] = sock;
    r.spec["mode"] = mode;
    r.spec["queues"] = queues;
    r.key = "vhost-user:" + sock;
    r.key_field = "backend.socket";
  }
  return r;
}

json backend_schema() {
  using namespace schema;
  json tap = object({{"type", {{"const", "tap"}}},
                     {"ifname", ifname()},
                     {"queues", integer(1, kMaxQueues)},
                     {"owner", with_description(string(64), "a user on this host (name or uid)")},
                     {"group", with_description(string(64), "a group on this host (name or gid)")}},
                    {"type", "ifname"});
  json netns = object({{"type", {{"const", "netns"}}}, {"netns", netns_name()}, {"ifname", ifname()}}, {"type", "netns"});
  json vhost = object({{"type", {{"const", "vhost-user"}}},
                       {"socket", with_description(string(107), "absolute path")},
                       {"mode", enumeration({"server", "client"})},
                       {"queues", integer(1, kMaxVhostQueues)},
                       {"owner", with_description(string(64), "server mode: a user on this host (name or uid)")},
                       {"group", with_description(string(64), "server mode: a group on this host (name or gid)")}},
                      {"type", "socket"});
  vhost["description"] = "vpcd is the virtio-net device backend (client mode: vpcd connects to the hypervisor's socket)";
  return {{"oneOf", json::array({tap, netns, vhost})}};
}

}  // namespace

KindSpec nic_kind() {
  KindSpec k;
  k.kind = "nics";
  k.table = "nics";
  k.singular = "NIC";
  k.schema_name = "Nic";
  k.description = "A guest's network interface in a subnet";
  k.needs = dp::Capability::kNics;
  k.fields = {
      {"subnet_id", schema::uuid(), true, {}},
      {"backend", backend_schema(), true, {}},
      {"mac", schema::with_description(schema::mac(), "default: derived from the id (locally administered)"), false,
       {}},
      {"ips", schema::with_description(schema::array(schema::ipv4(), 1, kMaxNicIps, true),
                                       "default: one free address of the subnet"),
       false, {}},
      {"security_group_ids", schema::array(schema::uuid(), 0, kMaxNicGroups, true), false,
       dp::Capability::kSecurityGroups},
      {"port_security", schema::with_description(schema::boolean(), "default true"), false, {}},
  };
  k.immutable = {"subnet_id"};
  k.output_columns = {
      {"vpc_id", schema::uuid(), false, {}},
      {"state", schema::enumeration({"up", "down", "error"}), false, {}},
      {"state_detail", schema::string(4096), false, {}},
  };
  k.filters = {"vpc_id", "subnet_id"};
  k.dependents = {{"floating-ips", "SELECT id FROM floating_ips WHERE nic_id = ?1 ORDER BY created_at LIMIT 10"}};
  k.normalize = [](Db& db, const std::string& id, const json& in, const json* old) {
    Normalized n;
    json subnet = need_ref(db, in, "subnet_id", "subnets", "subnet");
    std::string subnet_id = in["subnet_id"];
    std::string vpc_id = subnet["vpc_id"];
    Ipv4Prefix cidr = *Ipv4Prefix::parse(subnet["cidr"].get<std::string>());
    Ipv4Addr gw = *Ipv4Addr::parse(subnet["gateway"].get<std::string>());

    BackendResult be = normalize_backend(required(in, "backend"));
    {
      Query q(db, "SELECT id FROM nics WHERE backend_key = ? AND id != ?", be.key, id);
      if (q.next()) conflict(be.key_field, "the backend " + be.key + " is already used by NIC " + q.text(0));
    }

    const MacAddr router_mac = vpc_router_mac(db, vpc_id);
    auto mac_owner = [&](const MacAddr& m) -> std::optional<std::string> {
      if (m == router_mac) return "the VPC's router";
      Query q(db, "SELECT owner_id FROM vpc_macs WHERE vpc_id = ? AND mac = ? AND owner_id != ?", vpc_id,
              m.to_string(), id);
      if (q.next()) return q.text(0);
      return std::nullopt;
    };
    MacAddr mac;
    if (const json* v = member(in, "mac")) {
      mac = need_unicast_mac(*v, "mac");
      check_not_router_mac(mac, router_mac);
      if (auto o = mac_owner(mac)) conflict("mac", "MAC " + mac.to_string() + " is in use by " + *o + " in this VPC");
    } else if (old) {
      mac = *MacAddr::parse((*old)["mac"].get<std::string>());
    } else {
      uint32_t attempt = 0;
      for (mac = derived_mac(id, attempt); mac_owner(mac); mac = derived_mac(id, attempt)) {
        if (++attempt == kMacAttempts) conflict("mac", "no free MAC derived from the id; give one");
      }
    }

    auto ip_owner = [&](Ipv4Addr a) -> std::optional<std::string> {
      Query q(db, "SELECT nic_id FROM nic_ips WHERE subnet_id = ? AND ip = ? AND nic_id != ?", subnet_id,
              a.to_string(), id);
      if (q.next()) return q.text(0);
      return std::nullopt;
    };
    json ips = json::array();
    if (const json* v = member(in, "ips")) {
      if (!v->is_array() || v->empty() || v->size() > kMaxNicIps)
        bad_request("ips", "ips must be a list of 1.." + std::to_string(kMaxNicIps) + " IPv4 addresses");
      std::set<uint32_t> seen;
      for (size_t i = 0; i < v->size(); ++i) {
        std::string path = "ips[" + std::to_string(i) + "]";
        Ipv4Addr a = need_ipv4((*v)[i], path);
        if (!seen.insert(a.v).second) bad_request(path, path + ": " + a.to_string() + " is listed twice");
        if (!is_host_of(cidr, a))
          unprocessable(path, path + ": " + a.to_string() + " is not a host address of subnet " + cidr.to_string());
        if (a == gw) conflict(path, path + ": " + a.to_string() + " is the subnet's gateway");
        if (auto o = ip_owner(a)) conflict(path, path + ": " + a.to_string() + " is in use by NIC " + *o);
        ips.push_back(a.to_string());
      }
    } else if (old) {
      ips = (*old)["ips"];
    } else {
      std::set<uint32_t> used{gw.v};
      Query q(db, "SELECT ip FROM nic_ips WHERE subnet_id = ?", subnet_id);
      while (q.next())
        if (auto a = Ipv4Addr::parse(q.text(0))) used.insert(a->v);
      uint64_t last = uint64_t(cidr.broadcast().v);
      std::optional<Ipv4Addr> pick;
      for (uint64_t a = cidr.addr.v; a <= last && !pick; ++a)
        if (is_host_of(cidr, Ipv4Addr{uint32_t(a)}) && !used.count(uint32_t(a))) pick = Ipv4Addr{uint32_t(a)};
      if (!pick) conflict("ips", "subnet " + subnet_id + " (" + cidr.to_string() + ") has no free address");
      ips.push_back(pick->to_string());
    }

    json groups = json::array();
    if (const json* v = member(in, "security_group_ids")) {
      if (!v->is_array() || v->size() > kMaxNicGroups)
        bad_request("security_group_ids", "security_group_ids must be a list of at most " +
                                              std::to_string(kMaxNicGroups) + " ids");
      std::set<std::string> seen;
      for (size_t i = 0; i < v->size(); ++i) {
        std::string path = "security_group_ids[" + std::to_string(i) + "]";
        std::string sg = need_uuid((*v)[i], path);
        if (!seen.insert(sg).second) bad_request(path, path + ": " + sg + " is listed twice");
        auto spec = load_spec(db, "security_groups", sg);
        if (!spec) unprocessable(path, "security group " + sg + " does not exist");
        if ((*spec)["vpc_id"] != vpc_id) unprocessable(path, "security group " + sg + " belongs to another VPC");
        groups.push_back(sg);
      }
    }
    bool port_security = true;
    if (const json* v = member(in, "port_security")) port_security = need_bool(*v, "port_security");

    n.spec["subnet_id"] = subnet_id;
    n.spec["backend"] = be.spec;
    n.spec["mac"] = mac.to_string();
    n.spec["ips"] = ips;
    n.spec["security_group_ids"] = groups;
    n.spec["port_security"] = port_security;
    n.columns = {{"vpc_id", vpc_id}, {"subnet_id", subnet_id}, {"mac", mac.to_string()}, {"backend_key", be.key}};
    n.columns.emplace_back("owner_uid", be.uid ? ColumnValue(*be.uid) : ColumnValue(std::nullopt));
    n.columns.emplace_back("owner_gid", be.gid ? ColumnValue(*be.gid) : ColumnValue(std::nullopt));
    return n;
  };
  k.write_side = [](Db& db, const std::string& id, const json& spec) {
    std::string subnet_id = spec["subnet_id"];
    auto subnet = load_spec(db, "subnets", subnet_id);
    std::string vpc_id = (*subnet)["vpc_id"];
    Query(db, "DELETE FROM nic_ips WHERE nic_id = ?", id).run();
    for (const auto& ip : spec["ips"])
      Query(db, "INSERT INTO nic_ips (nic_id, subnet_id, ip) VALUES (?, ?, ?)", id, subnet_id, ip.get<std::string>())
          .run();
    Query(db, "DELETE FROM nic_security_groups WHERE nic_id = ?", id).run();
    for (const auto& sg : spec["security_group_ids"])
      Query(db, "INSERT INTO nic_security_groups (nic_id, sg_id) VALUES (?, ?)", id, sg.get<std::string>()).run();
    Query(db, "DELETE FROM vpc_macs WHERE owner_id = ?", id).run();
    Query(db, "INSERT INTO vpc_macs (vpc_id, mac, owner_id) VALUES (?, ?, ?)", vpc_id, spec["mac"].get<std::string>(),
          id)
        .run();
  };
  k.delete_side = [](Db& db, const std::string& id) { Query(db, "DELETE FROM vpc_macs WHERE owner_id = ?", id).run(); };
  return k;
}

}  // namespace vpcd::api
