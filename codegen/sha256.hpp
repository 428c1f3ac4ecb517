// SHA-256 through OpenSSL's libcrypto: the digest of a model's text in the banner of generated
// code, and the key and checksum of the compile cache (codegen/compile/cache.cpp).
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace cnnc::codegen {

// Incremental: update() any number of times, then hex() once. Throws std::runtime_error when
// libcrypto fails (it allocates).
class Sha256 {
 public:
  Sha256();
  void update(std::string_view bytes);
  // The digest as 64 lowercase hex digits; the object is spent afterwards.
  std::string hex();

 private:
  struct Free {
    void operator()(evp_md_ctx_st* context) const;
  };
  std::unique_ptr<evp_md_ctx_st, Free> context_;
};

// One-shot digest of bytes, 64 lowercase hex digits.
std::string sha256_hex(std::string_view bytes);

}  // namespace cnnc::codegen
