// The built-in filter banks of weights=, for the edge-detection lessons.
#include "dsl/draft.hpp"

namespace cnnc::dsl {

std::optional<FilterBank> filter_bank(std::string_view name) {
  if (name == "sobel")  // horizontal gradient (d/dx), then vertical gradient (d/dy)
    return FilterBank{
        2, 3, 3, 1, {-1, 0, 1, -2, 0, 2, -1, 0, 1, /**/ -1, -2, -1, 0, 0, 0, 1, 2, 1}};
  if (name == "laplacian")  // the 4-neighbour discrete Laplacian
    return FilterBank{1, 3, 3, 1, {0, 1, 0, 1, -4, 1, 0, 1, 0}};
  return std::nullopt;
}

}  // namespace cnnc::dsl
