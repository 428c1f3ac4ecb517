/* cnnc_abi.h: the versioned C ABI between a compiled model and the runtime that trains it.
 *
 * Two engines implement it: the generic engine in runtime/generic/ (shapes read at run time,
 * the test oracle and the baseline) and the code cnnc generates for one model (every shape a
 * constant). The trainer, eval, predict and checkpoints only ever talk to this header, so every
 * feature works with both engines.
 *
 * Layout, stated once:
 *   - A sample's activations are channels-last, [H][W][C]; a flat tensor is 1 x 1 x C.
 *   - A batch slice is n samples one after the other: [n][H][W][C].
 *   - Conv weights are [K][R][S][C]: filter, kernel row, kernel column, input channel.
 *   - Dense weights are [K][C_in], C_in = H*W*C of the input read in [H][W][C] order.
 *   - Biases are [K]. All parameters live in one float vector at the offsets of the layer table.
 *
 * Threads: the runtime splits a batch into slices and calls the entry points once per slice,
 * each with its own gradient buffer and workspace; it then reduces the gradients in a fixed
 * order and updates the parameters, by ranges on its threads (update_range); a model may instead
 * sum its dense layers' weight gradients itself, from the slices' workspaces (dense_weights),
 * to the same bits. In training, weights that an engine reads in a form of its own (prepare) are
 * made once per step, by parts on the threads, before the slices. An engine never starts threads
 * of its own inside these calls.
 */
#ifndef CNNC_ABI_H
#define CNNC_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Compatibility: a new version only appends members to the ends of cnnc_pass and cnnc_model
 * and never changes what an existing member means, so a model of an older version is a prefix
 * of a newer one. A model sets abi_version to the version it was built against and fills every
 * member of that version; a caller uses a member only from a model whose abi_version is at
 * least the version that added it, and a caller is built against a version at least as new as
 * the models it calls (a model reads the pass's members of its own version). The versions: 2
 * added cnnc_pass::gradients_ready, 3 cnnc_model::update_range, 4 cnnc_model::prepare and
 * cnnc_pass::prepared, 5 cnnc_model::dense_weights and cnnc_pass::defer_dense_weights, 6 a
 * model's promise that lets gradients_ready report a deferred dense layer. */
#define CNNC_ABI_VERSION 6u

enum cnnc_layer_kind {
  CNNC_CONV = 1,
  CNNC_MAXPOOL = 2,
  CNNC_AVGPOOL = 3,
  CNNC_FLATTEN = 4,
  CNNC_DENSE = 5,
  CNNC_DROPOUT = 6,
  CNNC_ACTIVATION = 7 /* an activation as a layer of its own */
};

enum cnnc_activation {
  CNNC_LINEAR = 0,
  CNNC_RELU = 1,
  CNNC_SIGMOID = 2,
  CNNC_TANH = 3,
  CNNC_SOFTMAX = 4 /* over all out_h*out_w*out_c values of a sample; last layer only */
};

enum cnnc_loss {
  CNNC_CROSS_ENTROPY = 0, /* fused with a final softmax; on logits when there is none */
  CNNC_MSE = 1            /* mean over outputs of (y - onehot(label))^2 */
};

enum cnnc_optimizer_kind { CNNC_SGD = 0, CNNC_ADAM = 1 };

/* One layer of the network, in order; layer i's output is layer i+1's input. */
typedef struct cnnc_layer {
  char name[24];      /* "conv1", "dense2": an identifier, NUL-terminated */
  int32_t kind;       /* enum cnnc_layer_kind */
  int32_t activation; /* fused activation of conv and dense; the function of CNNC_ACTIVATION */
  int32_t in_h, in_w, in_c;
  int32_t out_h, out_w, out_c;
  int32_t kernel_h, kernel_w; /* conv and pool window; 0 otherwise */
  int32_t stride_h, stride_w;
  int32_t pad_top, pad_left, pad_bottom, pad_right; /* conv only; zero padding */
  float dropout_rate;                               /* CNNC_DROPOUT: probability of dropping */
  int64_t weight_offset, weight_count; /* floats into the parameter vector; count 0 if none */
  int64_t bias_offset, bias_count;
  int32_t trainable; /* 0 for frozen layers and for layers without parameters */
} cnnc_layer;

/* What one call of forward or train works on. */
typedef struct cnnc_pass {
  const float* params;   /* param_count floats */
  const float* input;    /* [n][input_h][input_w][input_c] */
  const int32_t* labels; /* [n] class indices in [0, output_size); train only */
  float* output;         /* [n][output_size]: probabilities after a final softmax; may be NULL
                            in train */
  float* grads;          /* [param_count], overwritten by train with d(sum of the n losses) /
                            d(params); entries of frozen layers are left untouched */
  void* workspace;       /* workspace_bytes, 64-byte aligned, owned by the caller */
  int32_t n;             /* samples in this slice, 1 <= n <= max_batch */
  uint32_t epoch;        /* with seed and sample_base, keys the dropout masks */
  uint32_t sample_base;  /* index in the epoch of this slice's first sample */
  uint32_t pad_;
  uint64_t seed;
  /* Optional, train only (NULL: not called). Called once per trainable layer, on the thread
     that runs train, as soon as that layer's entries of grads (weights and bias) are final, in
     backward order (the last layer first): a data-parallel runtime exchanges them while the
     layers below still run backward. Entries of a layer not reported are final when train
     returns. */
  void (*gradients_ready)(const struct cnnc_pass* pass, int32_t layer);
  void* context; /* the caller's, for gradients_ready */
  /* Version 4, optional (NULL: the call prepares its own in the workspace). prepared_bytes of
     the weights as the model's products read them, filled by prepare from these params; the
     slices of one step can share one, prepared once instead of once per slice. */
  const void* prepared;
  /* Version 5, train only (0: as before); set only for a model whose dense_weights is not NULL.
     Nonzero: train writes no dense layer's weight entries of grads (they keep what they held) and
     leaves in the workspace what dense_weights reads to write the step's sum of them instead, so
     each slice of the step needs a workspace of its own. A model of version 5 must then be given
     a NULL gradients_ready; from version 6 a dense layer's report says that what dense_weights
     reads of it is final: train does not write it again. */
  int32_t defer_dense_weights;
} cnnc_pass;

typedef struct cnnc_optimizer {
  int32_t kind; /* enum cnnc_optimizer_kind */
  float lr;     /* this step's learning rate, after the schedule */
  float momentum;
  float beta1, beta2, eps;
  float weight_decay; /* L2: weight_decay * param is added to the gradient (as torch.optim) */
  int64_t step;       /* 1 for the first update; Adam's bias correction uses it */
} cnnc_optimizer;

typedef struct cnnc_model cnnc_model;

struct cnnc_model {
  uint32_t abi_version; /* CNNC_ABI_VERSION */
  const char* name;     /* the model's name from its .cnn file */
  const char* engine;   /* "generic", "specialized-avx512", ... */
  int32_t input_h, input_w, input_c;
  int32_t output_size; /* values per sample of the last layer: the classes */
  int32_t max_batch;   /* the largest n a call accepts */
  int32_t loss;        /* enum cnnc_loss */
  int32_t layer_count;
  const cnnc_layer* layers;
  int64_t param_count;     /* floats */
  int64_t workspace_bytes; /* one call's scratch for n = max_batch */

  /* Inference: dropout is off. Writes pass->output. */
  void (*forward)(const cnnc_model* model, const cnnc_pass* pass);
  /* Training forward, the loss and the backward pass. Returns the sum of the n per-sample
     losses; writes pass->grads and, when non-NULL, pass->output. */
  float (*train)(const cnnc_model* model, const cnnc_pass* pass);
  /* One optimizer step over the trainable layers' parameters. grads is the batch-mean
     gradient; state holds 2 * param_count floats, zero before the first step (SGD uses the
     first half as its momentum buffer, Adam both halves for its moments). */
  void (*update)(const cnnc_model* model, float* params, const float* grads, float* state,
                 const cnnc_optimizer* opt);

  void* impl; /* the engine's own data */

  /* Version 3. update for the parameters with index j in [begin, end) only, 0 <= begin <= end
     <= param_count: it reads and writes params[j], state[j] and state[param_count + j] of those
     j and no others, so calls on disjoint ranges may run at the same time on different threads,
     and calls whose ranges cover [0, param_count) once give update's bits. */
  void (*update_range)(const cnnc_model* model, float* params, const float* grads, float* state,
                       const cnnc_optimizer* opt, int64_t begin, int64_t end);

  /* Version 4. The weights in the form the products read (the bf16 variant's pairs, Winograd's
     transformed filters), for
     cnnc_pass::prepared: prepared_bytes bytes (64-byte aligned), 0 and prepare NULL when the
     engine reads params as they are. prepare writes part `part` of `parts`, 0 <= part < parts:
     calls for every part, at the same time on different threads or one after another, write
     everything the products read, the same bytes whatever parts is. */
  int64_t prepared_bytes;
  void (*prepare)(const cnnc_model* model, const float* params, void* prepared, int32_t part,
                  int32_t parts);

  /* Version 5, optional (NULL: never defer). For the `count` slices of one step that train ran
     with defer_dense_weights set, passes as train was given them and their workspaces untouched
     since: writes the weight gradient of dense layer `layer` (an index into layers) for its units
     [unit_begin, unit_end), grads[weight_offset + k * C_in + i] = scale * (0 + g_0 + g_1 + ...),
     g_s the entry train would have written for slice s, added in slice order. This is the
     runtime's sum of the slices' gradients with the same bits, without a copy of the weights'
     gradient per slice. It writes those entries of grads and no others, so calls on disjoint
     units, and the caller's work on other entries, may run at the same time on other threads;
     from version 6, so may a call for a layer that every slice has reported while train still
     runs. */
  void (*dense_weights)(const cnnc_model* model, int32_t layer, const cnnc_pass* passes,
                        int32_t count, float scale, int32_t unit_begin, int32_t unit_end,
                        float* grads);
};

/* The dropout mask, shared by every engine so that they agree bit for bit: element e of
 * layer l for sample s of epoch t under seed is kept when cnnc_dropout_bits(...) >= threshold,
 * threshold = (uint32_t)(rate * 2^32), and a kept value is scaled by 1 / (1 - rate). */
static inline uint32_t cnnc_hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

/* The per-(sample, layer) key; hoisted out of the element loop by fast engines. */
static inline uint32_t cnnc_dropout_key(uint64_t seed, uint32_t epoch, uint32_t sample,
                                        uint32_t layer) {
  uint32_t h = cnnc_hash32((uint32_t)seed ^ cnnc_hash32((uint32_t)(seed >> 32) + 0x9e3779b9u));
  h = cnnc_hash32(h + epoch);
  h = cnnc_hash32(h ^ (sample * 0x85ebca6bu));
  return cnnc_hash32(h + layer * 0xc2b2ae35u);
}

static inline uint32_t cnnc_dropout_bits(uint32_t key, uint32_t element) {
  return cnnc_hash32(key ^ (element * 0x9e3779b9u));
}

static inline uint32_t cnnc_dropout_threshold(float rate) {
  double t = (double)rate * 4294967296.0;
  return t >= 4294967295.0 ? 4294967295u : (uint32_t)t;
}

/* Winograd's F(2x2, 3x3), shared by every engine so that bf16's products round the same values:
 * the conv layers whose AVX-512 forward runs by it, and the transform of one filter. A layer
 * qualifies when its products outweigh the transforms (16 C K multiply-adds a 2x2 tile of
 * outputs against 32 C + 24 K additions), and its outputs are whole tiles; C is even for bf16's
 * pairs. The filter g, g[r][s] at g[(3 r + s) * stride], becomes u[4 a + b] = (G g G^T)[a][b],
 * G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]; a turned filter is
 * g + 8 stride with -stride. */
static inline int cnnc_winograd(const cnnc_layer* l) {
  return l->kind == CNNC_CONV && l->kernel_h == 3 && l->kernel_w == 3 && l->stride_h == 1 &&
         l->stride_w == 1 && l->in_c >= 16 && l->in_c % 2 == 0 && l->out_c >= 16 &&
         l->out_h % 2 == 0 && l->out_w % 2 == 0;
}

/* The input gradient by the same F(2x2, 3x3), as a forward of dz (padded by 2) with the filters
 * turned by 180 degrees and channels and filters swapped: dx[h][w][c] = sum_{k,r,s} w[k][r][s][c]
 * dz[h - r][w - s][k]. dz's K channels are then the ones summed (even for bf16's pairs) and dx's
 * tiles must be whole; unpadded layers only. */
static inline int cnnc_winograd_dx(const cnnc_layer* l) {
  return l->kind == CNNC_CONV && l->kernel_h == 3 && l->kernel_w == 3 && l->stride_h == 1 &&
         l->stride_w == 1 && l->pad_top + l->pad_left + l->pad_bottom + l->pad_right == 0 &&
         l->out_c >= 16 && l->out_c % 2 == 0 && l->in_c >= 16 && l->in_h % 2 == 0 &&
         l->in_w % 2 == 0;
}

/* The weight gradient by F(3x3, 2x2): dw is the correlation of x with dz, so the forward's 4x4
 * tiles of x, with dz's 2x2 tiles as the filter, give dw's 3x3. Its products take the channels in
 * AVX-512's 16 lanes (C a multiple of 16) and broadcast dz's transforms; 16 or more filters, as
 * for the forward, so that the products outweigh the transforms (16 C K multiply-adds a tile
 * against 32 C + 12 K additions, and A^T M A once a block). Padded or not. bf16 rounds
 * the transforms V = B^T x B and Z = G dz G^T, G = [1 0; 1 1; 1 -1; 0 1]. */
static inline int cnnc_winograd_dw(const cnnc_layer* l) {
  return l->kind == CNNC_CONV && l->kernel_h == 3 && l->kernel_w == 3 && l->stride_h == 1 &&
         l->stride_w == 1 && l->in_c % 16 == 0 && l->out_c >= 16 && l->out_h % 2 == 0 &&
         l->out_w % 2 == 0;
}

static inline void cnnc_winograd_filter(float* u, const float* g, int64_t stride) {
  float t[4][3];
  for (int s = 0; s < 3; ++s) {
    const float g0 = g[s * stride], g1 = g[(3 + s) * stride], g2 = g[(6 + s) * stride];
    t[0][s] = g0;
    t[1][s] = 0.5f * (g0 + g1 + g2);
    t[2][s] = 0.5f * (g0 - g1 + g2);
    t[3][s] = g2;
  }
  for (int a = 0; a < 4; ++a) {
    u[4 * a] = t[a][0];
    u[4 * a + 1] = 0.5f * (t[a][0] + t[a][1] + t[a][2]);
    u[4 * a + 2] = 0.5f * (t[a][0] - t[a][1] + t[a][2]);
    u[4 * a + 3] = t[a][2];
  }
}

/* Generated code only, for per-layer benchmarks: one phase of one layer on one ISA variant.
 * Generated code exports
 *   int32_t cnnc_<name>_kernels(const char* target, const cnnc_kernel** kernels);
 * which returns the count (0 when this CPU cannot run target) and points *kernels at the table.
 * run() works on the workspace of a model created for the same target, after one train() call
 * on that workspace has filled it with activations and gradients; it may write grads
 * (param_count floats) and the workspace, and it is safe to call repeatedly. Its products read
 * the weights that train() call read: with cnnc_pass::prepared, that buffer, which must then
 * outlive the runs; otherwise the workspace's own copy, made from the train() call's params.
 * A conv that a variant runs fused with the max pool after it (AVX-512) lists the pair's forward
 * as its own, FLOPs of both, and the pool lists no forward. */
typedef struct cnnc_kernel {
  const char* layer; /* "conv1" */
  const char* phase; /* "forward", "backward_data" or "backward_weights" */
  void (*run)(const float* params, float* grads, void* workspace);
  int32_t samples; /* images one run() covers: the ISA's lanes (a block), or max_batch for
                      work done once per slice */
  double flops;    /* floating-point operations of one run(), 2 per multiply-add */
} cnnc_kernel;

#ifdef __cplusplus
}
#endif

#endif /* CNNC_ABI_H */
