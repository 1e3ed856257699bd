#include "digests.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>

namespace rapport {

void Digests::Free::operator()(evp_md_st* p) const { EVP_MD_free(p); }
void Digests::Free::operator()(evp_md_ctx_st* p) const { EVP_MD_CTX_free(p); }
void Digests::Free::operator()(evp_mac_st* p) const { EVP_MAC_free(p); }
void Digests::Free::operator()(evp_mac_ctx_st* p) const { EVP_MAC_CTX_free(p); }

Result<Digests> Digests::Create(std::string_view hmac_key) {
  Digests d;
  d.sha256_.reset(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  if (d.sha256_ != nullptr) d.sha256_ctx_.reset(EVP_MD_CTX_new());
  if (d.sha256_ctx_ == nullptr) return Status::Unavailable("OpenSSL has no SHA-256 (libssl3 installation broken?)");
  d.hmac_.reset(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (d.hmac_ != nullptr) d.hmac_ctx_.reset(EVP_MAC_CTX_new(d.hmac_.get()));
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                               OSSL_PARAM_construct_end()};
  // An empty key must still be a key: a null pointer would mean "keep the
  // previous one", and there is none yet.
  static constexpr unsigned char kNoKey = 0;
  const auto* key = hmac_key.empty() ? &kNoKey : reinterpret_cast<const unsigned char*>(hmac_key.data());
  if (d.hmac_ctx_ == nullptr || EVP_MAC_init(d.hmac_ctx_.get(), key, hmac_key.size(), params) != 1) {
    return Status::Unavailable("OpenSSL has no HMAC-SHA-256 (libssl3 installation broken?)");
  }
  return d;
}

void Digests::Sha256(std::string_view data, unsigned char out[32]) {
  unsigned int size = 0;
  EVP_DigestInit_ex2(sha256_ctx_.get(), sha256_.get(), nullptr);
  EVP_DigestUpdate(sha256_ctx_.get(), data.data(), data.size());
  EVP_DigestFinal_ex(sha256_ctx_.get(), out, &size);
}

void Digests::HmacSha256(std::initializer_list<std::string_view> parts, unsigned char out[32]) {
  // A null key re-initialises with the key already set.
  EVP_MAC_init(hmac_ctx_.get(), nullptr, 0, nullptr);
  for (std::string_view part : parts) {
    EVP_MAC_update(hmac_ctx_.get(), reinterpret_cast<const unsigned char*>(part.data()), part.size());
  }
  size_t size = 0;
  EVP_MAC_final(hmac_ctx_.get(), out, &size, 32);
}

}  // namespace rapport
