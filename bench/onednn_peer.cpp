// onednn_peer.cpp: the oneDNN peer module (libcnnc_onednn_peer.so): OnednnNet behind the C
// interface of onednn_peer.h. Every exception stops here and becomes a status and a message.
#include "bench/onednn_peer.h"

#include <exception>
#include <string>
#include <vector>

#include "bench/onednn_net.hpp"

using cnnc::bench::onednn_set_threads;
using cnnc::bench::OnednnImplementation;
using cnnc::bench::OnednnNet;

struct cnnc_onednn_net {
  // oneDNN splits work by the thread count it sees when a primitive is created: set it first.
  cnnc_onednn_net(const cnnc_model& model, int32_t batch, int32_t t)
      : threads((onednn_set_threads(t), t)), net(model, batch), rows(net.implementation_rows()) {
    for (const OnednnImplementation& r : rows)
      c_rows.push_back({r.layer.c_str(), static_cast<int32_t>(r.phase), r.primitive.c_str(),
                        r.implementation.c_str()});
  }

  int32_t threads;
  OnednnNet net;
  std::vector<OnednnImplementation> rows;
  std::vector<cnnc_onednn_row> c_rows;  // pointing into rows
  std::string error;
};

namespace {

// Runs body on net with its thread count; an exception becomes CNNC_ONEDNN_ERROR and net's error.
template <class Body>
int32_t guarded(cnnc_onednn_net* net, Body&& body) {
  try {
    onednn_set_threads(net->threads);
    body(net->net);
    return CNNC_ONEDNN_OK;
  } catch (const std::exception& e) {
    net->error = e.what();
    return CNNC_ONEDNN_ERROR;
  }
}

int32_t create(const cnnc_model* model, int32_t batch, int32_t threads, cnnc_onednn_net** net,
               const char** error) {
  static thread_local std::string message;
  *net = nullptr;
  try {
    *net = new cnnc_onednn_net(*model, batch, threads);
    return CNNC_ONEDNN_OK;
  } catch (const cnnc::bench::OnednnUnsupported& e) {
    message = e.what();
    *error = message.c_str();
    return CNNC_ONEDNN_UNSUPPORTED;
  } catch (const std::exception& e) {
    message = e.what();
    *error = message.c_str();
    return CNNC_ONEDNN_ERROR;
  }
}

int32_t set_params(cnnc_onednn_net* net, const float* params) {
  return guarded(net, [&](OnednnNet& n) { n.set_params(params); });
}

int32_t train_step(cnnc_onednn_net* net, const float* images, const int32_t* labels,
                   const cnnc_optimizer* opt, uint32_t epoch, uint32_t sample_base, uint64_t seed,
                   float* loss) {
  return guarded(net, [&](OnednnNet& n) {
    *loss = n.train_step(images, labels, *opt, epoch, sample_base, seed);
  });
}

int32_t forward(cnnc_onednn_net* net, const float* images, float* outputs) {
  return guarded(net, [&](OnednnNet& n) { n.forward(images, outputs); });
}

const char* error(const cnnc_onednn_net* net) {
  return net->error.c_str();
}

int32_t implementations(const cnnc_onednn_net* net, const cnnc_onednn_row** rows) {
  *rows = net->c_rows.data();
  return static_cast<int32_t>(net->c_rows.size());
}

void destroy(cnnc_onednn_net* net) {
  delete net;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const cnnc_onednn_peer_api* cnnc_onednn_peer() {
  static const cnnc_onednn_peer_api api{
      CNNC_ONEDNN_PEER_VERSION, CNNC_ABI_VERSION, create, set_params, train_step, forward, error,
      implementations,          destroy};
  return &api;
}
