// TLS material for the HTTPS server: a self-signed certificate generated on first start (EC P-256, 10 years, SAN
// localhost / 127.0.0.1 / the host name) with the OpenSSL EVP and X509 APIs, and a check that a configured
// certificate and key belong together. Threading: no shared state; call from one thread at start-up.
#pragma once

#include <string>

namespace vpcd::http {

// Makes sure DIR/cert.pem and DIR/key.pem exist, generating both when both are absent (the key is written with mode
// 0600, the files appear atomically by rename). Sets *cert and *key to the two paths. Returns "" on success, else an
// error message naming the file (including when only one of the two files exists: nothing is overwritten).
std::string ensure_self_signed(const std::string& dir, std::string* cert, std::string* key);

// Loads a PEM certificate and a PEM private key and checks that the key matches the certificate's public key.
// On failure returns false and sets *error to a message naming the offending file.
bool check_cert_key(const std::string& cert, const std::string& key, std::string* error);

}  // namespace vpcd::http
