// Security groups, routes, uplinks, VTEP peers, remote NICs, NAT gateways and floating IPs (see kinds.h): validated per
// API.md. Each names the datapath capability its writes need (datapath/capabilities.h): until the datapath carries it
// out, the routes refuse writes with 501 and only this validation (unit-tested through the engine) runs.
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <set>

#include "server/api/kinds.h"
#include "server/api/schema.h"

namespace vpcd::api {

namespace {

constexpr size_t kMaxRules = 256;
constexpr size_t kMaxRemoteIps = 16;

std::string text_of(const json& v) { return v.get<std::string>(); }

constexpr int64_t kVxlanOverheadBytes = 50;  // outer Ethernet + IPv4 + UDP + VXLAN (datapath/proto/vxlan.h)

// The interface's MTU in this network namespace; nullopt when there is no such interface.
std::optional<int64_t> interface_mtu(const std::string& ifname) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) return std::nullopt;
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  const int rc = ::ioctl(fd, SIOCGIFMTU, &ifr);
  ::close(fd);
  if (rc != 0) return std::nullopt;
  return ifr.ifr_mtu;
}

// An external address on an uplink: unique per uplink across NAT gateways and floating IPs.
void check_uplink_ip(Db& db, const std::string& uplink_id, Ipv4Addr ip, const std::string& id) {
  Query q(db, "SELECT owner_id FROM uplink_ips WHERE uplink_id = ? AND ip = ? AND owner_id != ?", uplink_id,
          ip.to_string(), id);
  if (q.next()) conflict("external_ip", "external_ip " + ip.to_string() + " is in use by " + q.text(0));
}

void write_uplink_ip(Db& db, const std::string& id, const json& spec) {
  Query(db, "DELETE FROM uplink_ips WHERE owner_id = ?", id).run();
  Query(db, "INSERT INTO uplink_ips (uplink_id, ip, owner_id) VALUES (?, ?, ?)", text_of(spec["uplink_id"]),
        text_of(spec["external_ip"]), id)
      .run();
}

void delete_uplink_ip(Db& db, const std::string& id) {
  Query(db, "DELETE FROM uplink_ips WHERE owner_id = ?", id).run();
}

// An uplink that NAT may use: exists (422) with role external or both (422).
void need_external_uplink(Db& db, const json& in) {
  json up = need_ref(db, in, "uplink_id", "uplinks", "uplink");
  if (up["role"] == "underlay")
    unprocessable("uplink_id", "uplink " + text_of(in["uplink_id"]) + " has role underlay; NAT needs external or both");
}

}  // namespace

KindSpec security_group_kind() {
  KindSpec k;
  k.kind = "security-groups";
  k.table = "security_groups";
  k.singular = "security group";
  k.schema_name = "SecurityGroup";
  k.description = "Stateful allow rules for the NICs that list the group";
  k.needs = dp::Capability::kSecurityGroups;
  {
    using namespace schema;
    json rule = object({{"direction", enumeration({"ingress", "egress"})},
                        {"protocol", with_description(enumeration({"tcp", "udp", "icmp", "any"}), "default any")},
                        {"port_min", with_description(integer(0, 65535), "tcp and udp only; default 0")},
                        {"port_max", with_description(integer(0, 65535), "tcp and udp only; default 65535")},
                        {"cidr", with_description(cidr(), "default 0.0.0.0/0 when no remote_group_id")},
                        {"remote_group_id", uuid()}},
                       {"direction"});
    k.fields = {{"vpc_id", uuid(), true, {}}, {"rules", array(rule, 0, kMaxRules), false, {}}};
  }
  k.immutable = {"vpc_id"};
  k.filters = {"vpc_id"};
  k.dependents = {
      {"nics", "SELECT nic_id FROM nic_security_groups WHERE sg_id = ?1 LIMIT 10"},
      {"security-groups", "SELECT sg_id FROM security_group_refs WHERE remote_group_id = ?1 AND sg_id != ?1 LIMIT 10"}};
  k.normalize = [](Db& db, const std::string& id, const json& in, const json*) {
    Normalized n;
    need_ref(db, in, "vpc_id", "vpcs", "VPC");
    std::string vpc_id = in["vpc_id"];
    json rules = json::array();
    if (const json* v = member(in, "rules")) {
      if (!v->is_array() || v->size() > kMaxRules)
        bad_request("rules", "rules must be a list of at most " + std::to_string(kMaxRules) + " rules");
      for (size_t i = 0; i < v->size(); ++i) {
        std::string path = "rules[" + std::to_string(i) + "]";
        const json& r = (*v)[i];
        only_fields(r, path, {"direction", "protocol", "port_min", "port_max", "cidr", "remote_group_id"});
        json out;
        out["direction"] = need_enum(required(r, "direction", path), path + ".direction", {"ingress", "egress"});
        std::string proto = "any";
        if (const json* p = member(r, "protocol")) proto = need_enum(*p, path + ".protocol", {"tcp", "udp", "icmp", "any"});
        out["protocol"] = proto;
        const json* pmin = member(r, "port_min");
        const json* pmax = member(r, "port_max");
        if (proto == "tcp" || proto == "udp") {
          int64_t lo = pmin ? need_int(*pmin, path + ".port_min", 0, 65535) : 0;
          int64_t hi = pmax ? need_int(*pmax, path + ".port_max", 0, 65535) : 65535;
          if (lo > hi) bad_request(path + ".port_min", path + ": port_min must not exceed port_max");
          out["port_min"] = lo;
          out["port_max"] = hi;
        } else if (pmin || pmax) {
          bad_request(path + (pmin ? ".port_min" : ".port_max"), path + ": ports apply only to tcp and udp");
        }
        const json* cidr = member(r, "cidr");
        const json* remote = member(r, "remote_group_id");
        if (cidr && remote) bad_request(path + ".remote_group_id", path + ": give cidr or remote_group_id, not both");
        if (remote) {
          std::string rg = need_uuid(*remote, path + ".remote_group_id");
          if (rg != id) {
            auto spec = load_spec(db, "security_groups", rg);
            if (!spec) unprocessable(path + ".remote_group_id", "security group " + rg + " does not exist");
            if ((*spec)["vpc_id"] != vpc_id)
              unprocessable(path + ".remote_group_id", "security group " + rg + " belongs to another VPC");
          }
          out["remote_group_id"] = rg;
        } else {
          out["cidr"] = cidr ? need_cidr(*cidr, path + ".cidr").to_string() : "0.0.0.0/0";
        }
        rules.push_back(std::move(out));
      }
    }
    n.spec["vpc_id"] = vpc_id;
    n.spec["rules"] = rules;
    n.columns = {{"vpc_id", vpc_id}};
    return n;
  };
  k.write_side = [](Db& db, const std::string& id, const json& spec) {
    Query(db, "DELETE FROM security_group_refs WHERE sg_id = ?", id).run();
    std::set<std::string> refs;
    for (const auto& r : spec["rules"])
      if (r.contains("remote_group_id") && r["remote_group_id"] != id) refs.insert(text_of(r["remote_group_id"]));
    for (const auto& rg : refs)
      Query(db, "INSERT INTO security_group_refs (sg_id, remote_group_id) VALUES (?, ?)", id, rg).run();
  };
  return k;
}

void check_underlay_mtu(Db& db, const std::string& field, const std::string& vpc_id, int64_t vpc_mtu,
                        const std::string& ifname) {
  std::string dev = ifname;
  if (dev.empty()) {
    Query q(db, "SELECT ifname FROM uplinks WHERE role IN ('underlay', 'both') LIMIT 1");
    if (!q.next()) return;
    dev = q.text(0);
  }
  const std::optional<int64_t> mtu = interface_mtu(dev);
  if (!mtu) return;
  std::string worst_id = vpc_id;
  int64_t worst = vpc_mtu;
  Query q(db, "SELECT id, mtu FROM vpcs WHERE id != ? ORDER BY mtu DESC LIMIT 1", vpc_id);
  if (q.next() && q.int64(1) > worst) {
    worst_id = q.text(0);
    worst = q.int64(1);
  }
  if (worst + kVxlanOverheadBytes > *mtu)
    unprocessable(field, "VPC " + worst_id + " has mtu " + std::to_string(worst) + ", which with " +
                             std::to_string(kVxlanOverheadBytes) + " bytes of VXLAN headers does not fit the MTU " +
                             std::to_string(*mtu) + " of underlay interface " + dev);
}

KindSpec uplink_kind() {
  KindSpec k;
  k.kind = "uplinks";
  k.table = "uplinks";
  k.singular = "uplink";
  k.schema_name = "Uplink";
  k.description = "An interface the datapath drives for the underlay (VXLAN) or external (NAT) traffic";
  k.needs = dp::Capability::kUplinks;
  k.fields = {
      {"ifname", schema::ifname(), true, {}},
      {"address", schema::with_description(schema::cidr(), "the datapath's address with its prefix: 192.0.2.10/24"),
       true, {}},
      {"gateway", schema::with_description(schema::nullable(schema::ipv4()), "next hop for off-link destinations"),
       false, {}},
      // An external-only uplink serves NAT alone: refused (501) until the datapath carries NAT. `both` is accepted:
      // its underlay half is carried, and every NAT object that would use its external half is refused the same way.
      {"role", schema::with_description(schema::enumeration({"underlay", "external", "both"}), "default both"), false,
       dp::Capability::kNatGateways, {"external"}},
  };
  k.output_columns = {
      {"state", schema::enumeration({"up", "down", "error"}), false, {}},
      {"state_detail", schema::string(4096), false, {}},
  };
  k.dependents = {{"nat-gateways", "SELECT id FROM nat_gateways WHERE uplink_id = ?1 ORDER BY created_at LIMIT 10"},
                  {"floating-ips", "SELECT id FROM floating_ips WHERE uplink_id = ?1 ORDER BY created_at LIMIT 10"}};
  k.normalize = [](Db& db, const std::string& id, const json& in, const json* old) {
    Normalized n;
    std::string ifname = need_ifname(required(in, "ifname"), "ifname");
    {
      Query q(db, "SELECT id FROM uplinks WHERE ifname = ? AND id != ?", ifname, id);
      if (q.next()) conflict("ifname", "interface " + ifname + " is already uplink " + q.text(0));
    }
    Ipv4Prefix addr = need_host_cidr(required(in, "address"), "address");
    uint8_t first = uint8_t(addr.addr.v >> 24);
    if (first == 0 || first == 127 || first >= 224 || addr.len == 0)
      bad_request("address", "address must be a unicast address with a prefix length of 1..32");
    Ipv4Prefix net{Ipv4Addr{addr.addr.v & addr.mask()}, addr.len};
    if (addr.len <= 30 && (addr.addr == net.addr || addr.addr == net.broadcast()))
      bad_request("address", "address " + addr.to_string() + " is the network or broadcast address of its prefix");
    n.spec["ifname"] = ifname;
    n.spec["address"] = addr.to_string();
    if (const json* v = member(in, "gateway")) {
      Ipv4Addr gw = need_unicast_ipv4(*v, "gateway");
      if (!net.contains(gw) || gw == addr.addr)
        bad_request("gateway", "gateway " + gw.to_string() + " must be another address of " + net.to_string());
      n.spec["gateway"] = gw.to_string();
    } else {
      n.spec["gateway"] = nullptr;
    }
    std::string role = "both";
    if (const json* v = member(in, "role")) role = need_enum(*v, "role", {"underlay", "external", "both"});
    if (old && role == "underlay") {
      Query q(db,
              "SELECT id FROM nat_gateways WHERE uplink_id = ?1 UNION ALL SELECT id FROM floating_ips "
              "WHERE uplink_id = ?1 LIMIT 10",
              id);
      std::string users;
      while (q.next()) users += (users.empty() ? "" : ", ") + q.text(0);
      if (!users.empty()) conflict("role", "NAT objects use this uplink (" + users + "); it must stay external");
    }
    if (role != "external") {
      Query q(db, "SELECT id FROM uplinks WHERE role IN ('underlay', 'both') AND id != ? LIMIT 1", id);
      if (q.next())
        conflict("role", "uplink " + q.text(0) + " already carries the underlay: at most one uplink may have role "
                         "underlay or both");
      check_underlay_mtu(db, "ifname", "", 0, ifname);
    }
    n.spec["role"] = role;
    n.columns = {{"ifname", ifname}, {"role", role}};
    return n;
  };
  return k;
}

KindSpec vtep_peer_kind() {
  KindSpec k;
  k.kind = "vtep-peers";
  k.table = "vtep_peers";
  k.singular = "VTEP peer";
  k.schema_name = "VtepPeer";
  k.description = "A remote box that carries this VPC (receives its flooded frames)";
  k.needs = dp::Capability::kVtepPeers;
  k.fields = {{"vpc_id", schema::uuid(), true, {}}, {"underlay_ip", schema::ipv4(), true, {}}};
  k.immutable = {"vpc_id"};
  k.filters = {"vpc_id"};
  k.normalize = [](Db& db, const std::string& id, const json& in, const json*) {
    Normalized n;
    need_ref(db, in, "vpc_id", "vpcs", "VPC");
    std::string vpc_id = in["vpc_id"];
    Ipv4Addr ip = need_unicast_ipv4(required(in, "underlay_ip"), "underlay_ip");
    Query q(db, "SELECT id FROM vtep_peers WHERE vpc_id = ? AND underlay_ip = ? AND id != ?", vpc_id, ip.to_string(),
            id);
    if (q.next()) conflict("underlay_ip", "VTEP " + ip.to_string() + " is already peer " + q.text(0) + " of this VPC");
    n.spec["vpc_id"] = vpc_id;
    n.spec["underlay_ip"] = ip.to_string();
    n.columns = {{"vpc_id", vpc_id}, {"underlay_ip", ip.to_string()}};
    return n;
  };
  return k;
}

KindSpec remote_nic_kind() {
  KindSpec k;
  k.kind = "remote-nics";
  k.table = "remote_nics";
  k.singular = "remote NIC";
  k.schema_name = "RemoteNic";
  k.description = "A guest on another box: unicast goes straight to its VTEP, its ARP is answered locally";
  k.needs = dp::Capability::kRemoteNics;
  k.fields = {{"vpc_id", schema::uuid(), true, {}},
              {"mac", schema::mac(), true, {}},
              {"ips", schema::array(schema::ipv4(), 0, kMaxRemoteIps, true), false, {}},
              {"underlay_ip", schema::ipv4(), true, {}}};
  k.immutable = {"vpc_id"};
  k.filters = {"vpc_id"};
  k.normalize = [](Db& db, const std::string& id, const json& in, const json*) {
    Normalized n;
    json vpc = need_ref(db, in, "vpc_id", "vpcs", "VPC");
    std::string vpc_id = in["vpc_id"];
    MacAddr mac = need_unicast_mac(required(in, "mac"), "mac");
    check_not_router_mac(mac, vpc_router_mac(db, vpc_id));
    {
      Query q(db, "SELECT owner_id FROM vpc_macs WHERE vpc_id = ? AND mac = ? AND owner_id != ?", vpc_id,
              mac.to_string(), id);
      if (q.next()) conflict("mac", "MAC " + mac.to_string() + " is in use by " + q.text(0) + " in this VPC");
    }
    auto cidrs = vpc_cidrs(vpc);
    json ips = json::array();
    if (const json* v = member(in, "ips")) {
      if (!v->is_array() || v->size() > kMaxRemoteIps)
        bad_request("ips", "ips must be a list of at most " + std::to_string(kMaxRemoteIps) + " IPv4 addresses");
      std::set<uint32_t> seen;
      for (size_t i = 0; i < v->size(); ++i) {
        std::string path = "ips[" + std::to_string(i) + "]";
        Ipv4Addr a = need_ipv4((*v)[i], path);
        if (!seen.insert(a.v).second) bad_request(path, path + ": " + a.to_string() + " is listed twice");
        if (!in_any(cidrs, a))
          unprocessable(path, path + ": " + a.to_string() + " is not inside the VPC's CIDRs (" + join_cidrs(cidrs) + ")");
        ips.push_back(a.to_string());
      }
    }
    Ipv4Addr underlay = need_unicast_ipv4(required(in, "underlay_ip"), "underlay_ip");
    n.spec["vpc_id"] = vpc_id;
    n.spec["mac"] = mac.to_string();
    n.spec["ips"] = ips;
    n.spec["underlay_ip"] = underlay.to_string();
    n.columns = {{"vpc_id", vpc_id}, {"mac", mac.to_string()}, {"underlay_ip", underlay.to_string()}};
    return n;
  };
  k.write_side = [](Db& db, const std::string& id, const json& spec) {
    Query(db, "DELETE FROM vpc_macs WHERE owner_id = ?", id).run();
    Query(db, "INSERT INTO vpc_macs (vpc_id, mac, owner_id) VALUES (?, ?, ?)", text_of(spec["vpc_id"]),
          text_of(spec["mac"]), id)
        .run();
  };
  k.delete_side = [](Db& db, const std::string& id) { Query(db, "DELETE FROM vpc_macs WHERE owner_id = ?", id).run(); };
  return k;
}

KindSpec route_kind() {
  KindSpec k;
  k.kind = "routes";
  k.table = "routes";
  k.singular = "route";
  k.schema_name = "Route";
  k.description = "A static route of a VPC's router";
  k.needs = dp::Capability::kRoutes;
  k.fields = {{"vpc_id", schema::uuid(), true, {}},
              {"destination", schema::cidr(), true, {}},
              {"next_hop",
               {{"anyOf", json::array({schema::ipv4(), schema::enumeration({"nat-gateway", "blackhole"})})},
                {"description", "an IPv4 address in the VPC, nat-gateway or blackhole"}},
               true, {}}};
  k.immutable = {"vpc_id"};
  k.filters = {"vpc_id"};
  k.normalize = [](Db& db, const std::string& id, const json& in, const json*) {
    Normalized n;
    json vpc = need_ref(db, in, "vpc_id", "vpcs", "VPC");
    std::string vpc_id = in["vpc_id"];
    Ipv4Prefix dest = need_cidr(required(in, "destination"), "destination");
    {
      Query q(db, "SELECT id FROM routes WHERE vpc_id = ? AND destination = ? AND id != ?", vpc_id, dest.to_string(),
              id);
      if (q.next()) conflict("destination", "route " + q.text(0) + " already has destination " + dest.to_string());
    }
    const json& hop = required(in, "next_hop");
    if (hop.is_string() && (hop == "nat-gateway" || hop == "blackhole")) {
      // The router carries blackhole routes; a route to the NAT gateway needs NAT in the datapath.
      if (hop == "nat-gateway" && !dp::carries(dp::Capability::kNatGateways))
        not_carried(dp::Capability::kNatGateways, "next_hop");
      n.spec["next_hop"] = hop;
    } else {
      if (!hop.is_string() || !Ipv4Addr::parse(hop.get<std::string>()))
        bad_request("next_hop", "next_hop must be an IPv4 address, \"nat-gateway\" or \"blackhole\"");
      Ipv4Addr a = *Ipv4Addr::parse(hop.get<std::string>());
      auto cidrs = vpc_cidrs(vpc);
      if (!in_any(cidrs, a))
        unprocessable("next_hop", "next_hop " + a.to_string() + " is not inside the VPC's CIDRs (" + join_cidrs(cidrs) + ")");
      n.spec["next_hop"] = a.to_string();
    }
    n.spec["vpc_id"] = vpc_id;
    n.spec["destination"] = dest.to_string();
    n.columns = {{"vpc_id", vpc_id}, {"destination", dest.to_string()}};
    return n;
  };
  return k;
}

KindSpec nat_gateway_kind() {
  KindSpec k;
  k.kind = "nat-gateways";
  k.table = "nat_gateways";
  k.singular = "NAT gateway";
  k.schema_name = "NatGateway";
  k.description = "SNAT for a VPC's traffic leaving through an uplink";
  k.needs = dp::Capability::kNatGateways;
  k.fields = {{"vpc_id", schema::uuid(), true, {}},
              {"uplink_id", schema::uuid(), true, {}},
              {"external_ip", schema::ipv4(), true, {}}};
  k.immutable = {"vpc_id"};
  k.filters = {"vpc_id", "uplink_id"};
  k.normalize = [](Db& db, const std::string& id, const json& in, const json*) {
    Normalized n;
    need_ref(db, in, "vpc_id", "vpcs", "VPC");
    need_external_uplink(db, in);
    std::string vpc_id = in["vpc_id"], uplink_id = in["uplink_id"];
    Ipv4Addr ip = need_unicast_ipv4(required(in, "external_ip"), "external_ip");
    check_uplink_ip(db, uplink_id, ip, id);
    n.spec["vpc_id"] = vpc_id;
    n.spec["uplink_id"] = uplink_id;
    n.spec["external_ip"] = ip.to_string();
    n.columns = {{"vpc_id", vpc_id}, {"uplink_id", uplink_id}, {"external_ip", ip.to_string()}};
    return n;
  };
  k.write_side = write_uplink_ip;
  k.delete_side = delete_uplink_ip;
  return k;
}

KindSpec floating_ip_kind() {
  KindSpec k;
  k.kind = "floating-ips";
  k.table = "floating_ips";
  k.singular = "floating IP";
  k.schema_name = "FloatingIp";
  k.description = "1:1 DNAT+SNAT of an external address to a NIC's first IP";
  k.needs = dp::Capability::kFloatingIps;
  k.fields = {{"uplink_id", schema::uuid(), true, {}},
              {"external_ip", schema::ipv4(), true, {}},
              {"nic_id", schema::with_description(schema::nullable(schema::uuid()), "null: unassigned"), false, {}}};
  k.filters = {"uplink_id", "nic_id"};
  k.normalize = [](Db& db, const std::string& id, const json& in, const json*) {
    Normalized n;
    need_external_uplink(db, in);
    std::string uplink_id = in["uplink_id"];
    Ipv4Addr ip = need_unicast_ipv4(required(in, "external_ip"), "external_ip");
    check_uplink_ip(db, uplink_id, ip, id);
    n.spec["uplink_id"] = uplink_id;
    n.spec["external_ip"] = ip.to_string();
    n.spec["nic_id"] = nullptr;
    ColumnValue nic_col = std::nullopt;
    if (member(in, "nic_id")) {
      need_ref(db, in, "nic_id", "nics", "NIC");
      std::string nic_id = in["nic_id"];
      Query q(db, "SELECT id FROM floating_ips WHERE nic_id = ? AND id != ?", nic_id, id);
      if (q.next()) conflict("nic_id", "NIC " + nic_id + " already has floating IP " + q.text(0));
      n.spec["nic_id"] = nic_id;
      nic_col = nic_id;
    }
    n.columns = {{"uplink_id", uplink_id}, {"external_ip", ip.to_string()}, {"nic_id", nic_col}};
    return n;
  };
  k.write_side = write_uplink_ip;
  k.delete_side = delete_uplink_ip;
  return k;
}

const std::vector<KindSpec>& all_kinds() {
  static const std::vector<KindSpec> kinds = {vpc_kind(),         subnet_kind(),      nic_kind(),
                                              security_group_kind(), uplink_kind(),   vtep_peer_kind(),
                                              remote_nic_kind(),  route_kind(),       nat_gateway_kind(),
                                              floating_ip_kind()};
  return kinds;
}

}  // namespace vpcd::api
