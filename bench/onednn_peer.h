/* onednn_peer.h: the versioned C interface of the oneDNN peer module, libcnnc_onednn_peer.so:
 * the network of oneDNN primitives (onednn_net.hpp) behind C types only, so that cnnc opens it
 * on demand (onednn_peer_loader.hpp) and loads neither oneDNN nor OpenMP unless the peer runs.
 *
 * The module exports one function, CNNC_ONEDNN_PEER_ENTRY, which returns its table of function
 * pointers. A loader checks version and abi_version before it calls anything: version changes
 * with any change to this header, abi_version is the module's CNNC_ABI_VERSION (cnnc_abi.h: the
 * cnnc_model and cnnc_optimizer that cross this interface).
 *
 * No C++ exception crosses it: a call that fails returns a status other than CNNC_ONEDNN_OK,
 * and a message says why. Threads: every call caps oneDNN's OpenMP threads at the count given
 * to create, on the calling thread.
 */
#ifndef CNNC_ONEDNN_PEER_H
#define CNNC_ONEDNN_PEER_H

#include <stdint.h>

#include "cnnc_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CNNC_ONEDNN_PEER_VERSION 1u
#define CNNC_ONEDNN_PEER_ENTRY "cnnc_onednn_peer"

enum cnnc_onednn_status {
  CNNC_ONEDNN_OK = 0,
  CNNC_ONEDNN_UNSUPPORTED = 1, /* create: a layer or setting the network cannot map */
  CNNC_ONEDNN_ERROR = 2        /* anything else: oneDNN failed, memory ran out */
};

/* The phase a primitive belongs to; the values of cnnc::bench::Phase (onednn_types.hpp). */
enum cnnc_onednn_phase {
  CNNC_ONEDNN_FORWARD = 0,
  CNNC_ONEDNN_BACKWARD_DATA = 1,
  CNNC_ONEDNN_BACKWARD_WEIGHTS = 2
};

/* One primitive of the network, as cnnc::bench::OnednnImplementation. */
typedef struct cnnc_onednn_row {
  const char* layer;
  int32_t phase; /* enum cnnc_onednn_phase */
  const char* primitive;
  const char* implementation;
} cnnc_onednn_row;

typedef struct cnnc_onednn_net cnnc_onednn_net; /* the module's network, opaque */

typedef struct cnnc_onednn_peer_api {
  uint32_t version;     /* CNNC_ONEDNN_PEER_VERSION the module was built with */
  uint32_t abi_version; /* CNNC_ABI_VERSION likewise */

  /* A network for model's layer table and batches of exactly batch samples, oneDNN's threads
     capped at threads. Returns CNNC_ONEDNN_OK and *net, or a status and *error: a message owned
     by the module, valid until the next create on this thread. */
  int32_t (*create)(const cnnc_model* model, int32_t batch, int32_t threads, cnnc_onednn_net** net,
                    const char** error);
  /* These return CNNC_ONEDNN_OK or CNNC_ONEDNN_ERROR; then error(net) says why. */
  /* params in the ABI's layout (param_count floats); the optimizer state is zeroed. */
  int32_t (*set_params)(cnnc_onednn_net* net, const float* params);
  /* One step on images [batch][H][W][C] and labels [batch]; *loss the summed loss. */
  int32_t (*train_step)(cnnc_onednn_net* net, const float* images, const int32_t* labels,
                        const cnnc_optimizer* opt, uint32_t epoch, uint32_t sample_base,
                        uint64_t seed, float* loss);
  /* outputs [batch][output_size]: probabilities after a final softmax. */
  int32_t (*forward)(cnnc_onednn_net* net, const float* images, float* outputs);
  /* The message of the last call on net that failed, owned by net. */
  const char* (*error)(const cnnc_onednn_net* net);

  /* Every primitive the network runs, in the network's order: *rows, owned by net until
     destroy; returns how many. */
  int32_t (*implementations)(const cnnc_onednn_net* net, const cnnc_onednn_row** rows);
  void (*destroy)(cnnc_onednn_net* net);
} cnnc_onednn_peer_api;

/* The module's one exported function. */
typedef const cnnc_onednn_peer_api* (*cnnc_onednn_peer_entry)(void);
const cnnc_onednn_peer_api* cnnc_onednn_peer(void);

#ifdef __cplusplus
}
#endif

#endif /* CNNC_ONEDNN_PEER_H */
