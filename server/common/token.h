// API bearer tokens: "vpcd_<12-char id>_<43-char base64url secret>". The id is public (it names the token in the
// store and in audit logs); the secret is 32 bytes from RAND_bytes, shown once at creation. Only a salted SHA-256 of
// the secret is stored.
//
// Why a fast salted hash and not PBKDF2/scrypt/argon2: slow KDFs exist to make guessing low-entropy human passwords
// expensive. A 256-bit random secret cannot be guessed no matter how fast the hash is (2^256 work), so stretching buys
// nothing, while every API request (15k requests/s on two cores) must verify a token: one SHA-256 costs well under a
// microsecond, PBKDF2 with a safe iteration count costs tens of milliseconds. The per-token salt keeps equal secrets
// (impossible in practice) and precomputed tables out of the picture; comparison is constant time (CRYPTO_memcmp).
//
// Threading: all functions are pure apart from RAND_bytes (thread-safe in OpenSSL 3); call from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "server/http/types.h"

namespace vpcd {

struct TokenRecord {
  std::string id;        // 12 chars, [a-z2-7]
  std::string role;      // "admin" | "viewer"
  std::string salt_hex;  // 16 random bytes, hex
  std::string hash_hex;  // SHA-256(salt || secret text), hex
};

struct NewToken {
  std::string text;     // the full token, shown to the operator once
  TokenRecord record;   // what the store keeps
};

inline constexpr size_t kTokenIdLen = 12;
inline constexpr size_t kTokenSecretLen = 43;  // base64url of 32 bytes, no padding
inline constexpr size_t kTokenLen = 5 + kTokenIdLen + 1 + kTokenSecretLen;

// Throws std::runtime_error if the random generator fails or role is kNone.
NewToken make_token(http::Role role);

// True when `token` is well formed, its id equals record.id and SHA-256(salt || secret) equals record.hash_hex.
// The hash comparison is constant time.
bool verify(std::string_view token, const TokenRecord& record);

// The id part of a well-formed token (for the store lookup), nullopt when the text is not a token.
std::optional<std::string> token_id_of(std::string_view token);

std::string_view role_name(http::Role role);                   // "admin", "viewer", "none"
std::optional<http::Role> parse_role(std::string_view name);  // "admin" | "viewer"

}  // namespace vpcd
