// A .cnn file's training block in the runtime's terms: the one translation of dsl::Training into
// rt::TrainOptions, the initial parameters, and the data a model trains on.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cnnc_abi.h"
#include "data/dataset.hpp"
#include "dsl/graph.hpp"
#include "train/trainer.hpp"

namespace cnnc::engine {

// The optimizer at its base rate, step 0. Schedules are the trainer's business (rt::LrSchedule).
cnnc_optimizer optimizer_of(const dsl::Training& training);

// Epochs, batch, seed, optimizer, schedule and augmentation of the training block; everything
// else (out_dir, resume, hooks) is the caller's.
rt::TrainOptions train_options(const dsl::Training& training);

// He/Glorot initial parameters from the seed, with the weights= and bias= of the .cnn file
// written over them.
std::vector<float> initial_params(const dsl::Graph& graph, const cnnc_model& model, uint64_t seed);

// The threads a run uses unless told: every CPU the machine reports, at least one.
int default_threads();

// The largest slice of a batch that one of `threads` threads trains: what engines are made for.
int32_t slice_size(int64_t batch, int threads);

// $CNNC_DATA, else data/mnist.
std::string default_data_dir();

// The MNIST-format directory for the model's input and classes; the first `limit` training and
// test images when limit > 0, and `validation` of the training set held out. Throws
// std::runtime_error for a model whose input is not one channel, and rt::DataError for the data.
rt::Mnist load_data(const dsl::Graph& graph, const std::string& dir, double validation = 0,
                    int32_t limit = 0);

}  // namespace cnnc::engine
