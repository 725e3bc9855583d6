// GuestMemory: the front-end's memory regions (SET_MEM_TABLE) mapped into vpcd, and the two address translations
// vhost-user needs: guest-physical (descriptor buffers, indirect tables) and front-end virtual (ring addresses of
// SET_VRING_ADDR) to a pointer in vpcd.
//
// Every translation covers a whole range [addr, addr + len): the result is either a pointer to len bytes that lie
// inside one mapped region, or nullptr. Arithmetic is overflow-checked (addr + len may wrap in u64: refused), so a
// guest cannot name bytes outside what it shared (DPDK CVE-2018-1059, 2019-14818 class). translate_gpa_piece() returns
// the longest contiguous piece, for buffers that continue in the next region.
//
// Mapping: each region's fd is mmap'ed MAP_SHARED from offset 0 for mmap_offset + memory_size bytes (the offset need
// not be page aligned), after checking with fstat that the file is a regular file (memfd, hugetlbfs, tmpfs) at least
// that long: touching a mapping beyond the end of its file would raise SIGBUS. A front-end that shrinks its file after
// SET_MEM_TABLE could still cause SIGBUS (QEMU seals its memfd; DPDK virtio-user does not): see docs/STATUS.md.
// The fds are closed once mapped (the mapping keeps the memory).
//
// Threading: immutable after map(); any thread may translate. Destruction unmaps: the owner must make sure no worker
// is inside the device (VhostUserDevice takes every vring lock before it replaces or drops the table).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "datapath/io/unique_fd.h"
#include "datapath/io/vhost_user/protocol.h"

namespace vpcd::dp::vhost {

class GuestMemory {
 public:
  struct Region {
    uint64_t gpa = 0;   // guest-physical start
    uint64_t size = 0;  // bytes
    uint64_t uva = 0;   // front-end virtual start
    uint8_t* host = nullptr;    // vpcd pointer of gpa
    uint8_t* map_base = nullptr;  // mmap result (host - mmap_offset)
    uint64_t map_len = 0;
  };

  // Maps the regions of `table` (nregions already checked <= kMaxMemRegions) with fds[i] for region i. nullptr and
  // *error when a region is empty, its ranges overflow, its fd is not a regular file long enough, or mmap fails.
  static std::unique_ptr<GuestMemory> map(const MemTable& table, std::span<UniqueFd> fds, std::string* error);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Pointer to [gpa, gpa + len) when it lies inside one region, else nullptr. len 0 is refused.
  uint8_t* translate_gpa(uint64_t gpa, uint64_t len) const noexcept;
  // The contiguous start of [gpa, gpa + len): pointer and *piece_len (<= len) bytes, or nullptr when gpa is unmapped.
  uint8_t* translate_gpa_piece(uint64_t gpa, uint64_t len, uint64_t* piece_len) const noexcept;
  // Pointer to [uva, uva + len) of the front-end's address space when it lies inside one region, else nullptr.
  uint8_t* translate_uva(uint64_t uva, uint64_t len) const noexcept;

  const std::vector<Region>& regions() const noexcept { return regions_; }

 private:
  GuestMemory() = default;
  std::vector<Region> regions_;
};

// Overflow-checked "[start, start + len) inside [base, base + size)". len > 0.
constexpr bool range_inside(uint64_t start, uint64_t len, uint64_t base, uint64_t size) noexcept {
  if (len == 0 || start < base) return false;
  uint64_t off = start - base;
  return off < size && len <= size - off;
}

}  // namespace vpcd::dp::vhost
