// GuestMemory; see memory.h.
#include "datapath/io/vhost_user/memory.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vpcd::dp::vhost {

std::unique_ptr<GuestMemory> GuestMemory::map(const MemTable& table, std::span<UniqueFd> fds, std::string* error) {
  auto fail = [&](unsigned i, const std::string& why) {
    *error = "memory region " + std::to_string(i) + ": " + why;
    return nullptr;
  };
  if (table.nregions == 0 || table.nregions > kMaxMemRegions || fds.size() != table.nregions) {
    *error = "bad memory region count " + std::to_string(table.nregions);
    return nullptr;
  }
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  for (unsigned i = 0; i < table.nregions; ++i) {
    const MemRegion& r = table.regions[i];
    if (r.memory_size == 0) return fail(i, "size 0");
    uint64_t end;
    if (__builtin_add_overflow(r.guest_phys_addr, r.memory_size - 1, &end)) return fail(i, "guest address range overflows");
    if (__builtin_add_overflow(r.userspace_addr, r.memory_size - 1, &end)) return fail(i, "front-end address range overflows");
    uint64_t map_len;
    if (__builtin_add_overflow(r.mmap_offset, r.memory_size, &map_len)) return fail(i, "mmap offset + size overflows");
    if (map_len > uint64_t(SIZE_MAX / 2)) return fail(i, "too large");
    for (const Region& o : mem->regions_) {
      // Overlapping guest-physical ranges would make translation ambiguous.
      if (r.guest_phys_addr <= o.gpa + (o.size - 1) && o.gpa <= r.guest_phys_addr + (r.memory_size - 1))
        return fail(i, "overlaps another region");
    }
    struct stat st{};
    if (::fstat(fds[i].get(), &st) < 0) return fail(i, std::string("fstat: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return fail(i, "fd is not a memory file");
    if (st.st_size < 0 || uint64_t(st.st_size) < map_len)
      return fail(i, "file is " + std::to_string(st.st_size) + " bytes, region needs " + std::to_string(map_len));
    void* p = ::mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i].get(), 0);
    if (p == MAP_FAILED) return fail(i, std::string("mmap: ") + std::strerror(errno));
    Region reg;
    reg.gpa = r.guest_phys_addr;
    reg.size = r.memory_size;
    reg.uva = r.userspace_addr;
    reg.map_base = static_cast<uint8_t*>(p);
    reg.map_len = map_len;
    reg.host = reg.map_base + r.mmap_offset;
    mem->regions_.push_back(reg);
  }
  for (auto& fd : fds) fd.reset();
  return mem;
}

GuestMemory::~GuestMemory() {
  for (const Region& r : regions_) ::munmap(r.map_base, r.map_len);
}

uint8_t* GuestMemory::translate_gpa(uint64_t gpa, uint64_t len) const noexcept {
  for (const Region& r : regions_)
    if (range_inside(gpa, len, r.gpa, r.size)) return r.host + (gpa - r.gpa);
  return nullptr;
}

uint8_t* GuestMemory::translate_gpa_piece(uint64_t gpa, uint64_t len, uint64_t* piece_len) const noexcept {
  if (len == 0) return nullptr;
  for (const Region& r : regions_) {
    if (gpa < r.gpa) continue;
    uint64_t off = gpa - r.gpa;
    if (off >= r.size) continue;
    *piece_len = std::min(len, r.size - off);
    return r.host + off;
  }
  return nullptr;
}

uint8_t* GuestMemory::translate_uva(uint64_t uva, uint64_t len) const noexcept {
  for (const Region& r : regions_)
    if (range_inside(uva, len, r.uva, r.size)) return r.host + (uva - r.uva);
  return nullptr;
}

}  // namespace vpcd::dp::vhost
