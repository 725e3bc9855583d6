// Cursor: a bounds-checked read position over a frame's bytes (STYLE.md section 6).
//
// Every header read goes through try_read<Hdr>(), which memcpy()s the bytes into a local wire struct (no aliasing or
// alignment UB) and advances only on success, like OVS's data_try_pull() and Seastar's get_header<T>(). A Cursor never
// reads past the span it was given, so limiting the span (limit()) also bounds all later reads.
// Threading: a value type; use one per packet on the calling thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

namespace vpcd::proto {

class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size_bytes) noexcept : base_(data), buf_(data, size_bytes) {}
  explicit Cursor(std::span<const uint8_t> buf) noexcept : base_(buf.data()), buf_(buf) {}

  // Copies sizeof(Hdr) bytes into out and advances. False (cursor untouched) when fewer bytes remain.
  template <class Hdr>
  bool try_read(Hdr& out) noexcept {
    if (!try_peek(out)) return false;
    buf_ = buf_.subspan(sizeof(Hdr));
    return true;
  }

  // Like try_read() but does not advance.
  template <class Hdr>
  bool try_peek(Hdr& out) const noexcept {
    static_assert(std::is_trivially_copyable_v<Hdr>);
    if (buf_.size() < sizeof(Hdr)) return false;
    std::memcpy(&out, buf_.data(), sizeof(Hdr));
    return true;
  }

  // Advances by n bytes; false (cursor untouched) when fewer remain.
  bool try_skip(size_t n) noexcept {
    if (buf_.size() < n) return false;
    buf_ = buf_.subspan(n);
    return true;
  }

  // Shrinks the readable bytes to at most n (e.g. to an IP total length, dropping Ethernet padding).
  void limit(size_t n) noexcept {
    if (n < buf_.size()) buf_ = buf_.first(n);
  }

  size_t remaining() const noexcept { return buf_.size(); }
  size_t offset() const noexcept { return size_t(buf_.data() - base_); }  // bytes consumed since construction
  const uint8_t* pos() const noexcept { return buf_.data(); }
  std::span<const uint8_t> rest() const noexcept { return buf_; }

 private:
  const uint8_t* base_;
  std::span<const uint8_t> buf_;
};

}  // namespace vpcd::proto
