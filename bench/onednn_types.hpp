// onednn_types.hpp: what the oneDNN baseline (onednn_net.hpp) and the loader of its shared
// object (onednn_peer_loader.hpp) both hand to callers: phases, implementation rows, and the
// error that means "the oneDNN peer cannot run here". Free of oneDNN's headers.
#pragma once

#include <stdexcept>
#include <string>

namespace cnnc::bench {

// The oneDNN peer cannot run this model here: a layer or setting it cannot map, or (from the
// loader) cnnc was built without oneDNN or its module does not load. what() says which. Callers
// skip the peer with that reason; any other exception is a fault.
struct OnednnUnsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The values are those of the C interface's cnnc_onednn_phase (onednn_peer.h).
enum class Phase { forward = 0, backward_data = 1, backward_weights = 2 };

inline const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::forward: return "forward";
    case Phase::backward_data: return "backward_data";
    case Phase::backward_weights: return "backward_weights";
  }
  return "?";
}

// One primitive of the network: the layer and phase it belongs to, what it does
// ("convolution", "eltwise_relu backward", "reorder diff_dst nChw16c->nChw8c") and the
// implementation oneDNN chose for it ("jit:avx512_core", "brg:avx512_core", "simple:any").
struct OnednnImplementation {
  std::string layer;
  Phase phase;
  std::string primitive;
  std::string implementation;
};

}  // namespace cnnc::bench
