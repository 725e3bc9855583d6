// Token generation and verification; see token.h. Threading: any thread.
#include "server/common/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>

namespace vpcd {
namespace {

constexpr std::string_view kPrefix = "vpcd_";
constexpr std::string_view kIdAlphabet = "abcdefghijklmnopqrstuvwxyz234567";  // 32 symbols: no modulo bias
constexpr std::string_view kB64Url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr size_t kSecretBytes = 32;
constexpr size_t kSaltBytes = 16;

void random_bytes(unsigned char* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) throw std::runtime_error("RAND_bytes failed");
}

std::string to_hex(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kHex[p[i] >> 4];
    s[2 * i + 1] = kHex[p[i] & 0xf];
  }
  return s;
}

int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool from_hex(std::string_view s, std::string* out) {
  if (s.size() % 2 != 0) return false;
  out->resize(s.size() / 2);
  for (size_t i = 0; i < out->size(); ++i) {
    int hi = hex_val(s[2 * i]), lo = hex_val(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<char>(hi << 4 | lo);
  }
  return true;
}

// base64url without padding (RFC 4648 section 5).
std::string b64url(const unsigned char* p, size_t n) {
  std::string s;
  s.reserve((n * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = uint32_t(p[i]) << 16 | uint32_t(p[i + 1]) << 8 | p[i + 2];
    s += kB64Url[v >> 18 & 63];
    s += kB64Url[v >> 12 & 63];
    s += kB64Url[v >> 6 & 63];
    s += kB64Url[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = uint32_t(p[i]) << 16;
    s += kB64Url[v >> 18 & 63];
    s += kB64Url[v >> 12 & 63];
  } else if (n - i == 2) {
    uint32_t v = uint32_t(p[i]) << 16 | uint32_t(p[i + 1]) << 8;
    s += kB64Url[v >> 18 & 63];
    s += kB64Url[v >> 12 & 63];
    s += kB64Url[v >> 6 & 63];
  }
  return s;
}

std::array<unsigned char, 32> sha256(std::string_view a, std::string_view b) {
  std::array<unsigned char, 32> out{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned int len = 0;
  bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, a.data(), a.size()) == 1 && EVP_DigestUpdate(ctx, b.data(), b.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, out.data(), &len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok || len != out.size()) throw std::runtime_error("SHA-256 failed");
  return out;
}

struct Parts {
  std::string_view id;
  std::string_view secret;
};

std::optional<Parts> split(std::string_view token) {
  if (token.size() != kTokenLen || token.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string_view id = token.substr(kPrefix.size(), kTokenIdLen);
  if (token[kPrefix.size() + kTokenIdLen] != '_') return std::nullopt;
  std::string_view secret = token.substr(kPrefix.size() + kTokenIdLen + 1);
  for (char c : id)
    if (kIdAlphabet.find(c) == std::string_view::npos) return std::nullopt;
  for (char c : secret)
    if (kB64Url.find(c) == std::string_view::npos) return std::nullopt;
  // 32 bytes encode to 42 full symbols plus one carrying 4 bits; its low 2 bits must be zero (canonical form).
  if (kB64Url.find(secret.back()) & 0x3) return std::nullopt;
  return Parts{id, secret};
}

}  // namespace

std::string_view role_name(http::Role role) {
  switch (role) {
    case http::Role::kAdmin: return "admin";
    case http::Role::kViewer: return "viewer";
    case http::Role::kNone: break;
  }
  return "none";
}

std::optional<http::Role> parse_role(std::string_view name) {
  if (name == "admin") return http::Role::kAdmin;
  if (name == "viewer") return http::Role::kViewer;
  return std::nullopt;
}

NewToken make_token(http::Role role) {
  if (role == http::Role::kNone) throw std::runtime_error("a token needs role admin or viewer");
  unsigned char id_raw[kTokenIdLen];
  unsigned char secret_raw[kSecretBytes];
  unsigned char salt[kSaltBytes];
  random_bytes(id_raw, sizeof id_raw);
  random_bytes(secret_raw, sizeof secret_raw);
  random_bytes(salt, sizeof salt);

  NewToken t;
  t.record.id.reserve(kTokenIdLen);
  for (unsigned char b : id_raw) t.record.id += kIdAlphabet[b & 31];
  std::string secret = b64url(secret_raw, sizeof secret_raw);
  OPENSSL_cleanse(secret_raw, sizeof secret_raw);
  t.text = std::string(kPrefix) + t.record.id + "_" + secret;
  t.record.role = std::string(role_name(role));
  t.record.salt_hex = to_hex(salt, sizeof salt);
  std::string salt_str(reinterpret_cast<const char*>(salt), sizeof salt);
  auto h = sha256(salt_str, secret);
  t.record.hash_hex = to_hex(h.data(), h.size());
  OPENSSL_cleanse(secret.data(), secret.size());
  return t;
}

bool verify(std::string_view token, const TokenRecord& record) {
  auto parts = split(token);
  if (!parts || parts->id != record.id) return false;
  std::string salt, want;
  if (!from_hex(record.salt_hex, &salt) || !from_hex(record.hash_hex, &want) || want.size() != 32) return false;
  auto got = sha256(salt, parts->secret);
  return CRYPTO_memcmp(got.data(), want.data(), got.size()) == 0;
}

std::optional<std::string> token_id_of(std::string_view token) {
  auto parts = split(token);
  if (!parts) return std::nullopt;
  return std::string(parts->id);
}

}  // namespace vpcd
