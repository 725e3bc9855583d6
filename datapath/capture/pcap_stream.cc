// See pcap_stream.h.
#include "datapath/capture/pcap_stream.h"

#include <pcap/pcap.h>
#include <stdio.h>

#include <mutex>
#include <stdexcept>

namespace vpcd::dp {
namespace {
std::mutex g_compile_mu;  // guards pcap_compile (not reentrant before libpcap 1.8)
}  // namespace

std::optional<PcapFilter> PcapFilter::compile(const std::string& expr, uint32_t snaplen, std::string* error) {
  PcapFilter f;
  bool blank = expr.find_first_not_of(" \t\r\n") == std::string::npos;
  if (blank) return f;
  std::unique_ptr<pcap_t, decltype(&pcap_close)> dead(pcap_open_dead(DLT_EN10MB, int(snaplen)), &pcap_close);
  if (!dead) {
    *error = "libpcap: pcap_open_dead failed";
    return std::nullopt;
  }
  auto prog = std::make_unique<bpf_program>();
  std::scoped_lock lk(g_compile_mu);
  if (pcap_compile(dead.get(), prog.get(), expr.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    *error = pcap_geterr(dead.get());
    return std::nullopt;
  }
  f.prog_ = std::move(prog);
  return f;
}

PcapFilter::PcapFilter(PcapFilter&&) noexcept = default;
PcapFilter& PcapFilter::operator=(PcapFilter&& o) noexcept {
  if (this != &o) {
    if (prog_) pcap_freecode(prog_.get());
    prog_ = std::move(o.prog_);
  }
  return *this;
}

PcapFilter::~PcapFilter() {
  if (prog_) pcap_freecode(prog_.get());
}

bool PcapFilter::matches(const uint8_t* data, uint32_t cap_len, uint32_t wire_len) const noexcept {
  if (!prog_) return true;
  pcap_pkthdr h{};
  h.caplen = cap_len;
  h.len = wire_len;
  return pcap_offline_filter(prog_.get(), &h, data) != 0;
}

long PcapStream::cookie_write(void* cookie, const char* data, size_t n) {
  static_cast<PcapStream*>(cookie)->buf_.append(data, n);
  return long(n);
}

PcapStream::PcapStream(uint32_t snaplen) : snaplen_(snaplen) {
  dead_ = pcap_open_dead(DLT_EN10MB, int(snaplen));
  if (!dead_) throw std::runtime_error("libpcap: pcap_open_dead failed");
  cookie_io_functions_t io{};
  io.write = [](void* c, const char* d, size_t n) -> ssize_t { return cookie_write(c, d, n); };
  file_ = fopencookie(this, "w", io);
  if (!file_) {
    pcap_close(dead_);
    throw std::runtime_error("fopencookie failed");
  }
  dumper_ = pcap_dump_fopen(dead_, file_);  // writes the file header (into the FILE's buffer)
  if (!dumper_) {
    std::string e = pcap_geterr(dead_);
    fclose(file_);
    pcap_close(dead_);
    throw std::runtime_error("libpcap: pcap_dump_fopen: " + e);
  }
  fflush(file_);
}

PcapStream::~PcapStream() {
  pcap_dump_close(dumper_);  // closes file_ too
  pcap_close(dead_);
}

void PcapStream::add(uint64_t ts_ns, const uint8_t* data, uint32_t cap_len, uint32_t wire_len) {
  pcap_pkthdr h{};
  h.ts.tv_sec = time_t(ts_ns / 1000000000u);
  h.ts.tv_usec = suseconds_t((ts_ns % 1000000000u) / 1000u);
  h.caplen = cap_len < snaplen_ ? cap_len : snaplen_;
  h.len = wire_len < h.caplen ? h.caplen : wire_len;
  pcap_dump(reinterpret_cast<u_char*>(dumper_), &h, data);
}

void PcapStream::take(std::string& out) {
  fflush(file_);
  if (out.empty())
    out.swap(buf_);
  else
    out.append(buf_);
  buf_.clear();
}

}  // namespace vpcd::dp
