// libFuzzer target: the vpcd.conf parser (server/common/config). Any input must either parse or be refused with a
// ConfigError naming file:line; any other exception, crash or sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/common/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vpcd::Config cfg;
  try {
    vpcd::config_parse(cfg, std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.conf");
    vpcd::config_check(cfg);
  } catch (const vpcd::ConfigError&) {
  }
  return 0;
}
