// onednn_peer_loader.hpp: the oneDNN peer as cnnc runs it: OnednnNet's interface over the module
// libcnnc_onednn_peer.so (onednn_peer.h), opened on demand, so that the cnnc executable links
// neither oneDNN nor OpenMP and loads them only when this peer is benchmarked.
//
// Where the module is: $CNNC_ONEDNN_PEER when set, else next to the running executable (the
// build puts it in bin/ beside cnnc, and installs it beside cnnc). It is built whenever CMake
// finds oneDNN (bench/onednn.cmake); without it, constructing a peer throws OnednnUnsupported
// with "cnnc was built without oneDNN (install libdnnl-dev and reconfigure)".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/onednn_types.hpp"
#include "cnnc_abi.h"

struct cnnc_onednn_peer_api;
struct cnnc_onednn_net;

namespace cnnc::bench {

class OnednnPeer {
 public:
  static constexpr const char* kModuleName = "libcnnc_onednn_peer.so";
  // The module's path, or nullopt when there is none to open (cnnc was built without oneDNN).
  static std::optional<std::string> module_path();

  // Opens the module and builds the network for model's layer table and batches of exactly
  // `batch` samples, with oneDNN's threads capped at `threads` (for every call, on the calling
  // thread). Throws OnednnUnsupported when the module is absent, does not load or is of another
  // version, or when the model has what the network cannot map; std::runtime_error when oneDNN
  // fails. The module stays loaded for the life of the process: unloading an OpenMP runtime
  // while its worker threads live is not safe.
  OnednnPeer(const cnnc_model& model, int32_t batch, int threads);
  ~OnednnPeer();
  OnednnPeer(const OnednnPeer&) = delete;
  OnednnPeer& operator=(const OnednnPeer&) = delete;

  // As OnednnNet's (onednn_net.hpp); a failure of oneDNN throws std::runtime_error.
  void set_params(const float* params);
  float train_step(const float* images, const int32_t* labels, const cnnc_optimizer& opt,
                   uint32_t epoch, uint32_t sample_base, uint64_t seed);
  void forward(const float* images, float* outputs);
  std::vector<OnednnImplementation> implementation_rows() const;

 private:
  void check(int32_t status) const;

  const cnnc_onednn_peer_api* api_;
  cnnc_onednn_net* net_ = nullptr;
};

}  // namespace cnnc::bench
