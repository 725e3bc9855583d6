// Self-signed certificate generation and the cert/key match check.
#include "server/http/tls.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace vpcd::http {
namespace {

struct TempDir {
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "vpcd_tls_test_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(Tls, GeneratesMatchingSelfSignedPair) {
  TempDir dir;
  std::string cert, key;
  ASSERT_EQ(ensure_self_signed(dir.path, &cert, &key), "");
  EXPECT_EQ(cert, dir.path + "/cert.pem");
  EXPECT_EQ(key, dir.path + "/key.pem");
  struct stat st;
  ASSERT_EQ(stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string error;
  EXPECT_TRUE(check_cert_key(cert, key, &error)) << error;

  // Present files are kept as they are.
  std::string before = slurp(cert);
  std::string cert2, key2;
  ASSERT_EQ(ensure_self_signed(dir.path, &cert2, &key2), "");
  EXPECT_EQ(slurp(cert), before);
}

TEST(Tls, CertificateHasSanKeyTypeAndLifetime) {
  TempDir dir;
  std::string cert, key;
  ASSERT_EQ(ensure_self_signed(dir.path, &cert, &key), "");
  FILE* f = std::fopen(cert.c_str(), "r");
  ASSERT_NE(f, nullptr);
  X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(X509_check_host(x, "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
  EXPECT_NE(X509_check_host(x, "example.com", 0, 0, nullptr), 1);
  EVP_PKEY* pub = X509_get0_pubkey(x);
  ASSERT_NE(pub, nullptr);
  EXPECT_EQ(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
  char group[64] = {};
  size_t glen = 0;
  EXPECT_EQ(EVP_PKEY_get_group_name(pub, group, sizeof group, &glen), 1);
  EXPECT_STREQ(group, "prime256v1");
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(x)), 1);
  EXPECT_GT(days, 365 * 10 - 2);
  EXPECT_LT(days, 365 * 10 + 5);
  EXPECT_EQ(X509_check_issued(x, x), X509_V_OK);  // self-signed
  X509_free(x);
}

TEST(Tls, MismatchedKeyIsNamed) {
  TempDir a, b;
  std::string cert_a, key_a, cert_b, key_b;
  ASSERT_EQ(ensure_self_signed(a.path, &cert_a, &key_a), "");
  ASSERT_EQ(ensure_self_signed(b.path, &cert_b, &key_b), "");
  std::string error;
  EXPECT_FALSE(check_cert_key(cert_a, key_b, &error));
  EXPECT_NE(error.find(key_b), std::string::npos) << error;
  EXPECT_NE(error.find("does not match"), std::string::npos) << error;
}

TEST(Tls, UnreadableFilesAreNamed) {
  TempDir dir;
  std::string cert, key;
  ASSERT_EQ(ensure_self_signed(dir.path, &cert, &key), "");
  std::string error;
  EXPECT_FALSE(check_cert_key(dir.path + "/nope.pem", key, &error));
  EXPECT_NE(error.find(dir.path + "/nope.pem"), std::string::npos) << error;
  std::string junk = dir.path + "/junk.pem";
  std::ofstream(junk) << "not a certificate\n";
  EXPECT_FALSE(check_cert_key(junk, key, &error));
  EXPECT_NE(error.find(junk), std::string::npos) << error;
  EXPECT_FALSE(check_cert_key(cert, junk, &error));
  EXPECT_NE(error.find(junk), std::string::npos) << error;
}

TEST(Tls, HalfPresentPairIsAnErrorNotOverwritten) {
  TempDir dir;
  std::string key_path = dir.path + "/key.pem";
  std::ofstream(key_path) << "keep me\n";
  std::string cert, key;
  std::string error = ensure_self_signed(dir.path, &cert, &key);
  EXPECT_NE(error.find("cert.pem"), std::string::npos) << error;
  EXPECT_EQ(slurp(key_path), "keep me\n");
  EXPECT_FALSE(std::filesystem::exists(dir.path + "/cert.pem"));
}

TEST(Tls, MissingDirectoryIsAnError) {
  std::string cert, key;
  std::string error = ensure_self_signed("/nonexistent-vpcd-dir/x", &cert, &key);
  EXPECT_NE(error.find("/nonexistent-vpcd-dir/x"), std::string::npos) << error;
}

}  // namespace
}  // namespace vpcd::http
