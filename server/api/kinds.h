// The KindSpecs of API.md's object kinds (one function per kind) and helpers they share.
//
// Threading: the specs are immutable after construction; normalize() runs inside the caller's transaction.
#pragma once

#include <vector>

#include "server/api/resource.h"

namespace vpcd::api {

KindSpec vpc_kind();
KindSpec subnet_kind();
KindSpec nic_kind();
KindSpec security_group_kind();
KindSpec uplink_kind();
KindSpec vtep_peer_kind();
KindSpec remote_nic_kind();
KindSpec route_kind();
KindSpec nat_gateway_kind();
KindSpec floating_ip_kind();

// `in[field]`, or 400 "PREFIX.FIELD is required" (prefix: the path of `in`, "" at the top).
const json& required(const json& in, const std::string& field, const std::string& prefix = {});
// The CIDRs of a stored VPC spec.
std::vector<Ipv4Prefix> vpc_cidrs(const json& vpc_spec);
std::string join_cidrs(const std::vector<Ipv4Prefix>& cidrs);
// Whether `a` lies inside one of `cidrs`.
bool in_any(const std::vector<Ipv4Prefix>& cidrs, Ipv4Addr a);
// The router MAC of a stored VPC (datapath/router_mac.h); 422 naming vpc_id when the VPC does not exist.
MacAddr vpc_router_mac(Db& db, const std::string& vpc_id);
// 409 naming `mac` when a guest MAC equals its VPC's router MAC.
void check_not_router_mac(const MacAddr& mac, const MacAddr& router_mac);
// The underlay rule of API.md: every VPC's mtu + 50 (VXLAN) must fit the MTU of the underlay uplink's interface, as
// this process's network namespace sees it (SIOCGIFMTU). 422 naming `field` when it does not. No underlay uplink, or
// its interface absent (the uplink is reported down until it appears): nothing to check. vpc_mtu: the VPC being
// written (with its id, so its stored row is ignored), or 0 to check the stored VPCs only; ifname: the uplink being
// written, or empty to use the stored underlay uplink.
void check_underlay_mtu(Db& db, const std::string& field, const std::string& vpc_id, int64_t vpc_mtu,
                        const std::string& ifname);

}  // namespace vpcd::api
