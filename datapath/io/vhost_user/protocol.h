// vhost-user wire format (QEMU docs/interop/vhost-user.rst) and the virtio 1.x split-ring layout (virtio spec 2.7)
// that vpcd, as the virtio-net device backend, reads and writes. Everything here is little-endian on the wire and in
// guest memory; vpcd is built for little-endian hosts only (static_assert below), so fields are used as they are.
//
// Threading: constants and trivially copyable structs only.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace vpcd::dp::vhost {

static_assert(std::endian::native == std::endian::little, "vhost-user backend assumes a little-endian host");

// ---- message header ----
struct MsgHeader {
  uint32_t request;
  uint32_t flags;  // bits 0-1 version (1), bit 2 reply, bit 3 need_reply
  uint32_t size;   // payload bytes following the header
};
static_assert(sizeof(MsgHeader) == 12);

inline constexpr uint32_t kMsgVersion = 0x1;
inline constexpr uint32_t kMsgVersionMask = 0x3;
inline constexpr uint32_t kMsgFlagReply = 1u << 2;
inline constexpr uint32_t kMsgFlagNeedReply = 1u << 3;

inline constexpr unsigned kMaxMemRegions = 8;  // VHOST_MEMORY_BASELINE_NREGIONS: no CONFIGURE_MEM_SLOTS
inline constexpr unsigned kMaxFds = kMaxMemRegions;  // most fds one message may carry
inline constexpr unsigned kMaxQueuePairs = 8;
inline constexpr unsigned kMaxVrings = 2 * kMaxQueuePairs;

// Front-end request ids (vhost-user.rst "Front-end message types").
enum class Req : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSendRarp = 19,
  kNetSetMtu = 20,
  kSetBackendReqFd = 21,
  kIotlbMsg = 22,
  kSetVringEndian = 23,
  kGetConfig = 24,
  kSetConfig = 25,
  kResetDevice = 34,
  kGetMaxMemSlots = 36,
  kSetStatus = 39,
  kGetStatus = 40,
};

// ---- payloads ----
struct VringState {
  uint32_t index;
  uint32_t num;
};
static_assert(sizeof(VringState) == 8);

struct VringAddr {
  uint32_t index;
  uint32_t flags;  // bit 0: log (dirty logging; not supported)
  uint64_t desc_user_addr;   // front-end virtual addresses
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);

struct MemRegion {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;  // front-end virtual address
  uint64_t mmap_offset;     // offset of the region in the fd
};
static_assert(sizeof(MemRegion) == 32);

struct MemTable {
  uint32_t nregions;
  uint32_t padding;
  MemRegion regions[kMaxMemRegions];
};
static_assert(sizeof(MemTable) == 8 + 32 * kMaxMemRegions);

// SET_VRING_KICK / CALL / ERR u64: bits 0-7 index, bit 8 "no fd" (polling / no notification).
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFd = 1u << 8;

// Largest payload any message this backend accepts carries (SET_MEM_TABLE); a bigger header size is a protocol error.
inline constexpr uint32_t kMaxPayload = sizeof(MemTable);

// ---- feature bits ----
namespace feat {
inline constexpr uint64_t bit(unsigned n) { return uint64_t(1) << n; }
inline constexpr uint64_t kNetCsum = bit(0);
inline constexpr uint64_t kNetGuestCsum = bit(1);
inline constexpr uint64_t kNetMtu = bit(3);
inline constexpr uint64_t kNetMac = bit(5);
inline constexpr uint64_t kNetGuestTso4 = bit(7);
inline constexpr uint64_t kNetGuestTso6 = bit(8);
inline constexpr uint64_t kNetGuestEcn = bit(9);
inline constexpr uint64_t kNetGuestUfo = bit(10);
inline constexpr uint64_t kNetHostTso4 = bit(11);
inline constexpr uint64_t kNetHostTso6 = bit(12);
inline constexpr uint64_t kNetHostEcn = bit(13);
inline constexpr uint64_t kNetMrgRxbuf = bit(15);
inline constexpr uint64_t kNetStatus = bit(16);
inline constexpr uint64_t kNetCtrlVq = bit(17);
inline constexpr uint64_t kNetGuestAnnounce = bit(21);
inline constexpr uint64_t kNetMq = bit(22);
inline constexpr uint64_t kRingIndirectDesc = bit(28);
inline constexpr uint64_t kRingEventIdx = bit(29);
inline constexpr uint64_t kProtocolFeatures = bit(30);  // VHOST_USER_F_PROTOCOL_FEATURES
inline constexpr uint64_t kLogAll = bit(26);            // VHOST_F_LOG_ALL (migration dirty log: not offered)
inline constexpr uint64_t kVersion1 = bit(32);
inline constexpr uint64_t kAccessPlatform = bit(33);
inline constexpr uint64_t kRingPacked = bit(34);
inline constexpr uint64_t kInOrder = bit(35);
}  // namespace feat

namespace pfeat {
inline constexpr uint64_t bit(unsigned n) { return uint64_t(1) << n; }
inline constexpr uint64_t kMq = bit(0);
inline constexpr uint64_t kLogShmfd = bit(1);
inline constexpr uint64_t kRarp = bit(2);
inline constexpr uint64_t kReplyAck = bit(3);
inline constexpr uint64_t kNetMtu = bit(4);
inline constexpr uint64_t kBackendReq = bit(5);
inline constexpr uint64_t kConfig = bit(9);
inline constexpr uint64_t kResetDevice = bit(13);
inline constexpr uint64_t kStatus = bit(16);
}  // namespace pfeat

// What this backend offers (device features; the front-end acks a subset with SET_FEATURES).
inline constexpr uint64_t kOfferedFeatures =
    feat::kVersion1 | feat::kProtocolFeatures | feat::kNetMrgRxbuf | feat::kNetMtu | feat::kNetCsum |
    feat::kNetGuestCsum | feat::kNetHostTso4 | feat::kNetHostTso6 | feat::kNetGuestTso4 | feat::kNetGuestTso6 |
    feat::kNetHostEcn | feat::kNetGuestEcn | feat::kRingIndirectDesc | feat::kRingEventIdx | feat::kInOrder |
    feat::kNetStatus;
// Added when the NIC has more than one queue pair.
inline constexpr uint64_t kOfferedMqFeatures = feat::kNetMq;
inline constexpr uint64_t kOfferedProtocolFeatures =
    pfeat::kMq | pfeat::kRarp | pfeat::kReplyAck | pfeat::kNetMtu | pfeat::kResetDevice | pfeat::kStatus;

// ---- virtio device status (virtio spec 2.1) ----
inline constexpr uint8_t kStatusAcknowledge = 1;
inline constexpr uint8_t kStatusDriver = 2;
inline constexpr uint8_t kStatusDriverOk = 4;
inline constexpr uint8_t kStatusFeaturesOk = 8;
inline constexpr uint8_t kStatusNeedsReset = 64;
inline constexpr uint8_t kStatusFailed = 128;

// ---- split virtqueue (virtio spec 2.7) ----
struct VringDesc {
  uint64_t addr;  // guest-physical
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VringDesc) == 16);
inline constexpr uint16_t kDescNext = 1;
inline constexpr uint16_t kDescWrite = 2;
inline constexpr uint16_t kDescIndirect = 4;

struct VringUsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(VringUsedElem) == 8);

inline constexpr uint16_t kUsedFlagNoNotify = 1;     // used->flags: the device does not want kicks
inline constexpr uint16_t kAvailFlagNoInterrupt = 1;  // avail->flags: the driver does not want calls
inline constexpr uint32_t kMaxQueueSize = 32768;      // virtio: queue size <= 32768, a power of 2 for split rings

// Byte sizes of the three split-ring areas for queue size n (with the event-idx trailer words).
constexpr uint64_t desc_area_bytes(uint32_t n) { return uint64_t(n) * sizeof(VringDesc); }
constexpr uint64_t avail_area_bytes(uint32_t n) { return 4 + 2 * uint64_t(n) + 2; }
constexpr uint64_t used_area_bytes(uint32_t n) { return 4 + 8 * uint64_t(n) + 2; }

// virtio_net_hdr with num_buffers (virtio spec 5.1.6): 12 bytes with VERSION_1 or MRG_RXBUF, else the first 10.
struct NetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
static_assert(sizeof(NetHdr) == 12);

// virtio: (new_idx - event - 1) < (new_idx - old) in u16 arithmetic: the other side asked to be notified.
constexpr bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
  return uint16_t(new_idx - event_idx - 1) < uint16_t(new_idx - old_idx);
}

}  // namespace vpcd::dp::vhost
