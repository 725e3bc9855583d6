// libpcap for what capture needs from it: compiling a tcpdump filter expression to BPF (pcap_open_dead +
// pcap_compile), running it on a captured frame (pcap_offline_filter), and writing the pcap file format into memory
// (pcap_dump_fopen on a FILE* from fopencookie whose writes append to a std::string), so the file is exactly what
// tcpdump -w writes (link type Ethernet, microsecond timestamps) and nothing here hand-writes BPF or pcap records.
//
// Threading: a PcapFilter or PcapStream is used by one thread at a time. compile() serialises pcap_compile behind a
// process-wide mutex (older libpcap versions keep parser state in globals).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

struct pcap;
struct bpf_program;
struct pcap_dumper;

namespace vpcd::dp {

inline constexpr uint32_t kPcapMaxSnaplen = 262144;  // tcpdump's default and maximum

class PcapFilter {
 public:
  // nullopt with *error = libpcap's message when `expr` does not compile. An empty expression matches everything.
  static std::optional<PcapFilter> compile(const std::string& expr, uint32_t snaplen, std::string* error);
  PcapFilter(PcapFilter&&) noexcept;
  PcapFilter& operator=(PcapFilter&&) noexcept;
  ~PcapFilter();

  // True when the frame matches (wire_len: the frame's full length; cap_len bytes are available at data).
  bool matches(const uint8_t* data, uint32_t cap_len, uint32_t wire_len) const noexcept;
  bool match_all() const noexcept { return prog_ == nullptr; }

 private:
  PcapFilter() = default;
  std::unique_ptr<bpf_program> prog_;  // null: match everything
};

// A pcap file written into memory: the file header on construction, one record per add(); take() moves out what was
// written so far.
class PcapStream {
 public:
  explicit PcapStream(uint32_t snaplen);  // throws std::runtime_error when libpcap cannot set up the writer
  ~PcapStream();
  PcapStream(const PcapStream&) = delete;
  PcapStream& operator=(const PcapStream&) = delete;

  // Writes one record: at most snaplen of the cap_len bytes at data; wire_len is the original length.
  void add(uint64_t ts_ns, const uint8_t* data, uint32_t cap_len, uint32_t wire_len);
  // Appends everything written since the last take() to out.
  void take(std::string& out);
  size_t pending_bytes() const noexcept { return buf_.size(); }

 private:
  static long cookie_write(void* cookie, const char* data, size_t n);

  uint32_t snaplen_;
  std::string buf_;
  pcap* dead_ = nullptr;
  std::FILE* file_ = nullptr;
  pcap_dumper* dumper_ = nullptr;
};

}  // namespace vpcd::dp
