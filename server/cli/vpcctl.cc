// vpcctl: the operator's command-line client for vpcd's REST API (API.md), on cpprestsdk's http_client.
//   vpcctl [--server URL] [--token T] [--insecure | --cacert FILE] [-o table|json] KIND VERB ...
//   KIND: vpcs subnets nics security-groups uplinks vtep-peers remote-nics routes nat-gateways floating-ips events
//   VERB: list [--vpc-id ID] [--subnet-id ID] [--limit N] [--offset N] | get ID | create [--json BODY | -f FILE |
//         key=value ...] [--id UUID] | update ID [--json|-f|key=value] [--if-match REV] | delete ID [--if-match REV]
//   also: health, stats, nic-stats ID,
//         capture ID [--uplink] [--filter EXPR] [--count N] [--seconds S] [--snaplen L] [-w FILE]: the pcap stream of
//         GET /v1/nics/ID/capture (or /v1/uplinks/ID/capture) to FILE or stdout (`vpcctl capture ID | tcpdump -r -`)
// Server and token also come from $VPCD_URL / $VPCD_TOKEN or ~/.config/vpcctl/config (`key = value`: server, token,
// cacert, insecure, output); flags win over the environment, which wins over the file. A problem+json error is
// printed with its status, title, detail and field; the exit status is 1 for an API error, 2 for bad usage, 3 when
// the server cannot be reached.
//
// Threading: single-threaded (cpprestsdk's own threads do the I/O; every call is waited for).
#include <cpprest/http_client.h>

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "server/cli/table.h"

namespace {

using nlohmann::json;
namespace http = web::http;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ClientSettings {
  std::string server = "https://127.0.0.1:8443";
  std::string token;
  std::string cacert;
  bool insecure = false;
  std::string output = "table";
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

void load_settings_file(ClientSettings& s) {
  const char* home = std::getenv("HOME");
  if (!home) return;
  const std::string path = std::string(home) + "/.config/vpcctl/config";
  std::ifstream in(path);
  if (!in) return;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) throw UsageError(path + ":" + std::to_string(n) + ": expected key = value");
    const std::string k = trim(line.substr(0, eq)), v = trim(line.substr(eq + 1));
    if (k == "server") {
      s.server = v;
    } else if (k == "token") {
      s.token = v;
    } else if (k == "cacert") {
      s.cacert = v;
    } else if (k == "insecure") {
      s.insecure = v == "true" || v == "yes" || v == "1" || v == "on";
    } else if (k == "output") {
      s.output = v;
    } else {
      throw UsageError(path + ":" + std::to_string(n) + ": unknown key \"" + k + "\"");
    }
  }
}

// key=value arguments -> a JSON object. "a.b=v" nests; a value that parses as JSON (number, true, [..], {..}, null,
// "..") is taken as JSON, anything else as a string.
json body_from_pairs(const std::vector<std::string>& pairs) {
  json body = json::object();
  for (const auto& p : pairs) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError("expected key=value, got \"" + p + "\"");
    const std::string key = p.substr(0, eq), text = p.substr(eq + 1);
    json value = json::parse(text, nullptr, false);
    if (value.is_discarded()) value = text;
    json* at = &body;
    size_t start = 0;
    for (size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) {
      json& next = (*at)[key.substr(start, dot - start)];
      if (!next.is_null() && !next.is_object()) throw UsageError("\"" + key + "\": conflicts with another key");
      if (next.is_null()) next = json::object();
      at = &next;
    }
    (*at)[key.substr(start)] = std::move(value);
  }
  return body;
}

json read_body(const std::string& inline_json, const std::string& file, const std::vector<std::string>& pairs) {
  const int sources = int(!inline_json.empty()) + int(!file.empty()) + int(!pairs.empty());
  if (sources > 1) throw UsageError("give the body one way: --json, -f or key=value");
  if (!inline_json.empty()) {
    json j = json::parse(inline_json, nullptr, false);
    if (j.is_discarded()) throw UsageError("--json: not valid JSON");
    return j;
  }
  if (!file.empty()) {
    std::stringstream ss;
    if (file == "-") {
      ss << std::cin.rdbuf();
    } else {
      std::ifstream in(file);
      if (!in) throw UsageError(file + ": cannot read");
      ss << in.rdbuf();
    }
    json j = json::parse(ss.str(), nullptr, false);
    if (j.is_discarded()) throw UsageError(file + ": not valid JSON");
    return j;
  }
  return body_from_pairs(pairs);
}

class Client {
 public:
  explicit Client(const ClientSettings& s, std::chrono::seconds timeout = std::chrono::seconds(30))
      : s_(s), client_(make_client(s, timeout)) {}

  // GET path and copy a 200 response's body to out as it arrives (flushing every piece). Returns (status, error body
  // or null, bytes and pcap records written).
  struct Streamed {
    int status = 0;
    json error;
    uint64_t bytes = 0, records = 0;
  };
  Streamed stream(const std::string& path, std::FILE* out) {
    http::http_request req("GET");
    req.set_request_uri(path);
    if (!s_.token.empty()) req.headers().add("Authorization", "Bearer " + s_.token);
    http::http_response resp = client_.request(req).get();
    Streamed r;
    r.status = int(resp.status_code());
    if (r.status != 200) {
      const std::string text = resp.extract_utf8string(true).get();
      r.error = json::parse(text, nullptr, false);
      if (r.error.is_discarded()) r.error = text;
      return r;
    }
    auto sbuf = resp.body().streambuf();
    std::vector<uint8_t> v(65536);
    // Walks the pcap records as they pass to count them: 24-byte file header, then 16-byte record headers whose
    // incl_len (offset 8, the file's byte order: the writer's, little-endian on every host vpcd runs on) is skipped.
    uint64_t skip = 24, hdr_fill = 0;
    uint8_t hdr[16];
    for (;;) {
      const size_t n = sbuf.getn(v.data(), v.size()).get();  // what has arrived (waits for at least a byte)
      if (n == 0) break;
      if (std::fwrite(v.data(), 1, n, out) != n) throw std::runtime_error("write failed");
      std::fflush(out);
      r.bytes += n;
      for (size_t i = 0; i < n;) {
        if (skip) {
          size_t k = std::min<uint64_t>(skip, n - i);
          skip -= k;
          i += k;
          continue;
        }
        hdr[hdr_fill++] = v[i++];
        if (hdr_fill == 16) {
          skip = uint64_t(hdr[8]) | uint64_t(hdr[9]) << 8 | uint64_t(hdr[10]) << 16 | uint64_t(hdr[11]) << 24;
          hdr_fill = 0;
          ++r.records;
        }
      }
    }
    return r;
  }

  // Returns (status, parsed body or null). Throws web::http::http_exception when the server cannot be reached.
  std::pair<int, json> call(const std::string& method, const std::string& path, const json* body = nullptr,
                            const std::string& if_match = {}, const std::string& content_type = "application/json") {
    http::http_request req(method);
    req.set_request_uri(path);
    if (!s_.token.empty()) req.headers().add("Authorization", "Bearer " + s_.token);
    req.headers().add("Accept", "application/json");
    if (!if_match.empty()) req.headers().add("If-Match", if_match);
    if (body) req.set_body(body->dump(), content_type);
    http::http_response resp = client_.request(req).get();
    const std::string text = resp.extract_utf8string(true).get();
    json j = text.empty() ? json() : json::parse(text, nullptr, false);
    if (j.is_discarded()) j = text;  // /metrics and other text bodies
    return {int(resp.status_code()), std::move(j)};
  }

 private:
  static http::client::http_client make_client(const ClientSettings& s, std::chrono::seconds timeout) {
    http::client::http_client_config cfg;
    cfg.set_timeout(timeout);
    if (s.insecure) cfg.set_validate_certificates(false);
    if (!s.cacert.empty()) {
      const std::string ca = s.cacert;
      cfg.set_ssl_context_callback([ca](boost::asio::ssl::context& ctx) { ctx.load_verify_file(ca); });
    }
    return http::client::http_client(web::uri(utility::conversions::to_string_t(s.server)), cfg);
  }

  ClientSettings s_;
  http::client::http_client client_;
};

// problem+json (or any error body) -> one clear line on stderr.
int report_error(int status, const json& body) {
  std::string msg = "error: " + std::to_string(status);
  if (body.is_object()) {
    if (body.contains("title") && body["title"].is_string()) msg += " " + body["title"].get<std::string>();
    if (body.contains("detail") && body["detail"].is_string()) msg += ": " + body["detail"].get<std::string>();
    if (body.contains("field") && body["field"].is_string() && !body["field"].get<std::string>().empty()) {
      msg += " (field: " + body["field"].get<std::string>() + ")";
    }
  } else if (body.is_string() && !body.get<std::string>().empty()) {
    msg += ": " + body.get<std::string>();
  }
  std::cerr << msg << "\n";
  return 1;
}

const std::vector<std::string> kKinds = {"vpcs",   "subnets",    "nics",        "security-groups",
                                         "uplinks", "vtep-peers", "remote-nics", "routes",
                                         "nat-gateways", "floating-ips", "events"};

std::string normalize_kind(const std::string& k) {
  for (const auto& kind : kKinds) {
    if (k == kind || k + "s" == kind) return kind;  // "vpc" -> "vpcs", "nic" -> "nics"
  }
  throw UsageError("unknown kind \"" + k + "\" (one of: vpcs subnets nics security-groups uplinks vtep-peers "
                   "remote-nics routes nat-gateways floating-ips events)");
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"vpcctl: command-line client for the vpcd REST API"};
  app.footer(
      "Objects: vpcctl [OPTIONS] KIND VERB ...\n"
      "  KIND: vpcs subnets nics security-groups uplinks vtep-peers remote-nics routes nat-gateways floating-ips\n"
      "        events (singular works too: vpc, nic, ...)\n"
      "  list [--vpc-id ID] [--subnet-id ID] [--limit N] [--offset N]\n"
      "  get ID\n"
      "  create [--id UUID] (--json BODY | -f FILE|- | key=value ...)   a.b=v nests; JSON values are parsed\n"
      "  update ID (--json BODY | -f FILE | key=value ...) [--if-match REV]   (JSON merge patch)\n"
      "  delete ID [--if-match REV]\n"
      "Settings: flags, then $VPCD_URL/$VPCD_TOKEN, then ~/.config/vpcctl/config (server, token, cacert, insecure,\n"
      "output). Exit status: 0 ok, 1 API error, 2 usage, 3 server unreachable.");
  ClientSettings s;
  std::string opt_server, opt_token, opt_cacert, opt_output;
  bool opt_insecure = false;
  app.add_option("--server", opt_server, "base URL (default $VPCD_URL or https://127.0.0.1:8443)");
  app.add_option("--token", opt_token, "bearer token (default $VPCD_TOKEN)");
  auto* insecure = app.add_flag("--insecure,-k", opt_insecure, "do not verify the server's certificate");
  app.add_option("--cacert", opt_cacert, "PEM file with the CA (or the self-signed cert) to trust")
      ->excludes(insecure);
  app.add_option("-o,--output", opt_output, "table|json")->check(CLI::IsMember({"table", "json"}));
  app.fallthrough();

  auto* health = app.add_subcommand("health", "GET /v1/health");
  auto* stats = app.add_subcommand("stats", "GET /v1/stats");
  auto* nic_stats = app.add_subcommand("nic-stats", "GET /v1/nics/ID/stats");
  std::string nic_id;
  nic_stats->add_option("ID", nic_id, "NIC id")->required();
  auto* capture = app.add_subcommand("capture", "GET /v1/nics/ID/capture: a pcap file to -w FILE or stdout");
  std::string cap_id, cap_filter, cap_file = "-";
  uint64_t cap_count = 0;
  unsigned cap_seconds = 0, cap_snaplen = 0;
  bool cap_uplink = false;
  capture->add_option("ID", cap_id, "NIC id (or uplink id with --uplink)")->required();
  capture->add_option("--filter", cap_filter, "tcpdump filter expression");
  capture->add_option("--count", cap_count, "stop after N frames (server default 1000)")->check(CLI::Range(1, 1000000));
  capture->add_option("--seconds", cap_seconds, "stop after S seconds (server default 10)")->check(CLI::Range(1, 3600));
  capture->add_option("--snaplen", cap_snaplen, "bytes kept per frame")->check(CLI::Range(1, 262144));
  capture->add_option("-w", cap_file, "write the pcap to FILE ('-' = stdout, the default)");
  capture->add_flag("--uplink", cap_uplink, "ID is an uplink");
  for (auto* sc : {health, stats, nic_stats, capture}) sc->fallthrough();

  // KIND VERB ...: parsed from the remaining words so that every kind (and its singular) works the same way.
  std::vector<std::string> words;
  app.allow_extras();

  try {
    app.require_subcommand(0, 1);
    app.parse(argc, argv);
    words = app.remaining();
    if (!*health && !*stats && !*nic_stats && !*capture && words.empty()) throw CLI::CallForHelp();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    load_settings_file(s);
    if (const char* v = std::getenv("VPCD_URL")) s.server = v;
    if (const char* v = std::getenv("VPCD_TOKEN")) s.token = v;
    if (!opt_server.empty()) s.server = opt_server;
    if (!opt_token.empty()) s.token = opt_token;
    if (!opt_cacert.empty()) s.cacert = opt_cacert;
    if (opt_insecure) s.insecure = true;
    if (!opt_output.empty()) s.output = opt_output;
    if (s.output != "table" && s.output != "json") throw UsageError("output: expected table or json");
    while (!s.server.empty() && s.server.back() == '/') s.server.pop_back();

    Client client(s);
    const bool as_json = s.output == "json";
    auto show = [&](const json& j, const std::string& kind, bool is_list) {
      if (as_json) {
        std::cout << j.dump(2) << "\n";
      } else if (is_list) {
        std::cout << vpcctl::render_list(kind, j);
      } else {
        std::cout << vpcctl::render_object(j);
      }
    };
    auto expect = [&](std::pair<int, json> r, auto&& on_ok) -> int {
      if (r.first >= 200 && r.first < 300) {
        on_ok(r.second);
        return 0;
      }
      return report_error(r.first, r.second);
    };

    if (*health) return expect(client.call("GET", "/v1/health"), [&](const json& j) { show(j, "", false); });
    if (*stats) return expect(client.call("GET", "/v1/stats"), [&](const json& j) { std::cout << j.dump(2) << "\n"; });
    if (*nic_stats) {
      return expect(client.call("GET", "/v1/nics/" + nic_id + "/stats"), [&](const json& j) { show(j, "", false); });
    }

    if (*capture) {
      std::string q;
      auto add_q = [&q](const std::string& k, const std::string& v) {
        q += (q.empty() ? "?" : "&") + k + "=" + web::uri::encode_data_string(v);
      };
      if (!cap_filter.empty()) add_q("filter", cap_filter);
      if (cap_count) add_q("count", std::to_string(cap_count));
      if (cap_seconds) add_q("seconds", std::to_string(cap_seconds));
      if (cap_snaplen) add_q("snaplen", std::to_string(cap_snaplen));
      std::FILE* out = stdout;
      if (cap_file != "-") {
        out = std::fopen(cap_file.c_str(), "wb");
        if (!out) throw UsageError(cap_file + ": cannot open for writing");
      } else if (isatty(STDOUT_FILENO)) {
        throw UsageError("capture: the pcap is binary; give -w FILE or pipe it (vpcctl capture ID | tcpdump -r -)");
      }
      // The server ends the stream at --seconds (10 by default); allow for quiet periods and the final flush.
      Client streaming(s, std::chrono::seconds((cap_seconds ? cap_seconds : 10) + 30));
      auto r = streaming.stream(std::string(cap_uplink ? "/v1/uplinks/" : "/v1/nics/") + cap_id + "/capture" + q, out);
      if (out != stdout) std::fclose(out);
      if (r.status != 200) return report_error(r.status, r.error);
      std::cerr << "vpcctl: " << r.records << " frames captured (" << r.bytes << " bytes)\n";
      return 0;
    }

    // KIND VERB [args]
    CLI::App sub{"vpcctl KIND VERB"};
    if (words.size() < 2) throw UsageError("expected KIND VERB, e.g. \"vpcctl vpcs list\"");
    const std::string kind = normalize_kind(words[0]);
    const std::string verb = words[1];
    std::string id, inline_json, file, vpc_id, subnet_id, if_match, new_id;
    int limit = 0, offset = -1;
    std::vector<std::string> pairs;
    sub.add_option("--vpc-id", vpc_id);
    sub.add_option("--subnet-id", subnet_id);
    sub.add_option("--limit", limit)->check(CLI::Range(1, 1000));
    sub.add_option("--offset", offset)->check(CLI::NonNegativeNumber);
    sub.add_option("--json", inline_json);
    sub.add_option("-f,--file", file);
    sub.add_option("--if-match", if_match);
    sub.add_option("--id", new_id);
    sub.add_option("args", pairs);
    std::vector<std::string> rest(words.begin() + 2, words.end());
    std::reverse(rest.begin(), rest.end());
    try {
      sub.parse(rest);
    } catch (const CLI::ParseError& e) {
      throw UsageError(kind + " " + verb + ": " + e.what());
    }
    auto take_id = [&]() {
      if (pairs.empty()) throw UsageError(kind + " " + verb + ": missing ID");
      std::string v = pairs.front();
      pairs.erase(pairs.begin());
      return v;
    };
    const std::string base = "/v1/" + kind;

    if (verb == "list") {
      std::string q;
      auto add_q = [&q](const std::string& k, const std::string& v) {
        q += (q.empty() ? "?" : "&") + k + "=" + web::uri::encode_data_string(v);
      };
      if (!vpc_id.empty()) add_q("vpc_id", vpc_id);
      if (!subnet_id.empty()) add_q("subnet_id", subnet_id);
      if (limit > 0) add_q("limit", std::to_string(limit));
      if (offset >= 0) add_q("offset", std::to_string(offset));
      if (!pairs.empty()) throw UsageError("list: unexpected argument \"" + pairs.front() + "\"");
      return expect(client.call("GET", base + q), [&](const json& j) { show(j, kind, true); });
    }
    if (verb == "get") {
      id = take_id();
      if (!pairs.empty()) throw UsageError("get: unexpected argument \"" + pairs.front() + "\"");
      return expect(client.call("GET", base + "/" + id), [&](const json& j) { show(j, kind, false); });
    }
    if (verb == "create") {
      const json body = read_body(inline_json, file, pairs);
      if (!body.is_object()) throw UsageError("the body must be a JSON object");
      auto r = new_id.empty() ? client.call("POST", base, &body) : client.call("PUT", base + "/" + new_id, &body);
      return expect(std::move(r), [&](const json& j) { show(j, kind, false); });
    }
    if (verb == "update") {
      id = take_id();
      const json body = read_body(inline_json, file, pairs);
      if (!body.is_object() || body.empty()) throw UsageError("update: give the fields to change");
      return expect(client.call("PATCH", base + "/" + id, &body, if_match, "application/merge-patch+json"),
                    [&](const json& j) { show(j, kind, false); });
    }
    if (verb == "delete") {
      id = take_id();
      if (!pairs.empty()) throw UsageError("delete: unexpected argument \"" + pairs.front() + "\"");
      return expect(client.call("DELETE", base + "/" + id, nullptr, if_match), [&](const json&) {
        if (!as_json) std::cout << "deleted " << id << "\n";
      });
    }
    throw UsageError("unknown verb \"" + verb + "\" (list, get, create, update, delete)");
  } catch (const UsageError& e) {
    std::cerr << "vpcctl: " << e.what() << "\n";
    return 2;
  } catch (const web::http::http_exception& e) {
    std::cerr << "vpcctl: cannot reach " << s.server << ": " << e.what() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "vpcctl: " << e.what() << "\n";
    return 3;
  }
}

// cpprestsdk keeps pooled TLS connections alive on its own threads; destroyed from static destructors after OpenSSL's
// atexit cleanup they crash the process (SIGSEGV after the output was written: microsoft/cpprestsdk#1482). Every
// file and stream vpcctl writes is closed or flushed when run() returns, so leave without the exit-time teardown.
int main(int argc, char** argv) {
  const int rc = run(argc, argv);
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(rc);
}
