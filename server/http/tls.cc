// Self-signed certificate generation and cert/key checks; see tls.h. Threading: start-up only, no shared state.
#include "server/http/tls.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace vpcd::http {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct FileClose {
  void operator()(FILE* f) const { std::fclose(f); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using FilePtr = std::unique_ptr<FILE, FileClose>;

constexpr long kValiditySecs = 10L * 365 * 24 * 3600 + 3 * 24 * 3600;  // 10 years incl. leap days

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool add_ext(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// True when `name` can go into a DNS SAN entry as is (letters, digits, '-', '.').
bool dns_safe(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) return false;
  return true;
}

std::string make_cert(EVP_PKEY* pkey, X509Ptr* out) {
  X509Ptr cert(X509_new());
  if (!cert) return openssl_error();
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) return "RAND_bytes failed";
  serial_bytes[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
  bool ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get())) != nullptr;
  BN_free(bn);
  if (!ok) return openssl_error();
  if (X509_set_version(cert.get(), 2) != 1) return openssl_error();  // v3
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), kValiditySecs))
    return openssl_error();
  if (X509_set_pubkey(cert.get(), pkey) != 1) return openssl_error();
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("vpcd"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1,
                                 -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1)
    return openssl_error();

  // No keyUsage extension: a self-signed end-entity certificate is its own issuer, and clients that pin it as a
  // trust anchor must see it as self-signed (which a keyUsage without keyCertSign would deny).
  std::string san = "DNS:localhost,IP:127.0.0.1,IP:::1";
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0 && dns_safe(host) && std::strcmp(host, "localhost") != 0)
    san += std::string(",DNS:") + host;
  if (!add_ext(cert.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(cert.get(), NID_ext_key_usage, "serverAuth") ||
      !add_ext(cert.get(), NID_subject_key_identifier, "hash") ||
      !add_ext(cert.get(), NID_authority_key_identifier, "keyid:always") ||
      !add_ext(cert.get(), NID_subject_alt_name, san.c_str()))
    return openssl_error();
  if (X509_sign(cert.get(), pkey, EVP_sha256()) == 0) return openssl_error();
  *out = std::move(cert);
  return "";
}

// Creates `path` exclusively with `mode` and writes it with `write`; false sets *error.
template <class W>
bool write_new_file(const std::string& path, mode_t mode, W&& write, std::string* error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    *error = "cannot create " + path + ": " + std::strerror(errno);
    return false;
  }
  ::fchmod(fd, mode);  // umask must not widen or narrow what we ask for
  FilePtr f(::fdopen(fd, "w"));
  if (!f) {
    ::close(fd);
    *error = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  if (!write(f.get())) {
    *error = "cannot write " + path + ": " + openssl_error();
    return false;
  }
  if (std::fflush(f.get()) != 0 || ::fsync(::fileno(f.get())) != 0) {
    *error = "cannot write " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

std::string ensure_self_signed(const std::string& dir, std::string* cert, std::string* key) {
  *cert = dir + "/cert.pem";
  *key = dir + "/key.pem";
  bool have_cert = exists(*cert), have_key = exists(*key);
  if (have_cert && have_key) return "";
  if (have_cert) return "certificate " + *cert + " exists but its key " + *key + " is missing";
  if (have_key) return "key " + *key + " exists but its certificate " + *cert + " is missing";

  PkeyPtr pkey(EVP_EC_gen("P-256"));
  if (!pkey) return "cannot generate an EC P-256 key: " + openssl_error();
  X509Ptr x509;
  if (std::string err = make_cert(pkey.get(), &x509); !err.empty()) return "cannot build certificate: " + err;

  std::string error;
  std::string key_tmp = *key + ".tmp", cert_tmp = *cert + ".tmp";
  ::unlink(key_tmp.c_str());
  ::unlink(cert_tmp.c_str());
  bool ok = write_new_file(
                key_tmp, 0600,
                [&](FILE* f) {
                  return PEM_write_PrivateKey(f, pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
                },
                &error) &&
            write_new_file(
                cert_tmp, 0644, [&](FILE* f) { return PEM_write_X509(f, x509.get()) == 1; }, &error);
  if (ok && ::rename(key_tmp.c_str(), key->c_str()) != 0) {
    error = "cannot rename " + key_tmp + " to " + *key + ": " + std::strerror(errno);
    ok = false;
  }
  if (ok && ::rename(cert_tmp.c_str(), cert->c_str()) != 0) {
    error = "cannot rename " + cert_tmp + " to " + *cert + ": " + std::strerror(errno);
    ::unlink(key->c_str());
    ok = false;
  }
  if (!ok) {
    ::unlink(key_tmp.c_str());
    ::unlink(cert_tmp.c_str());
  }
  return error;
}

bool check_cert_key(const std::string& cert, const std::string& key, std::string* error) {
  FilePtr cf(std::fopen(cert.c_str(), "r"));
  if (!cf) {
    *error = "cannot open certificate " + cert + ": " + std::strerror(errno);
    return false;
  }
  X509Ptr x509(PEM_read_X509(cf.get(), nullptr, nullptr, nullptr));
  if (!x509) {
    *error = "certificate " + cert + " is not a PEM certificate: " + openssl_error();
    return false;
  }
  FilePtr kf(std::fopen(key.c_str(), "r"));
  if (!kf) {
    *error = "cannot open private key " + key + ": " + std::strerror(errno);
    return false;
  }
  PkeyPtr pkey(PEM_read_PrivateKey(kf.get(), nullptr, nullptr, nullptr));
  if (!pkey) {
    *error = "private key " + key + " is not an unencrypted PEM private key: " + openssl_error();
    return false;
  }
  EVP_PKEY* pub = X509_get0_pubkey(x509.get());
  if (!pub || EVP_PKEY_eq(pub, pkey.get()) != 1) {
    ERR_clear_error();
    *error = "private key " + key + " does not match certificate " + cert;
    return false;
  }
  return true;
}

}  // namespace vpcd::http
