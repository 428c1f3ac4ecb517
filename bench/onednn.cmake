# onednn.cmake: finds oneDNN for the oneDNN peer and sets CNNC_ONEDNN_FOUND; the target
# DNNL::dnnl then links it (with OpenMP, its CPU runtime on Debian). cnnc builds without it: the
# module libcnnc_onednn_peer.so is then not built, and cnnc bench skips the peer.
#
# find_package(dnnl CONFIG) first. Debian's dnnl-config.cmake (libdnnl-dev 2.6) also requires
# OpenCL (its GPU runtime) and fails hard without the OpenCL headers, which cnnc does not need:
# only ask it when OpenCL is there, and otherwise find the header and library directly.
include_guard(DIRECTORY)
set(CNNC_ONEDNN_FOUND OFF)
find_package(OpenMP QUIET COMPONENTS CXX)
find_package(OpenCL QUIET)
if(OpenCL_FOUND)
  find_package(dnnl CONFIG QUIET)
endif()
if(NOT TARGET DNNL::dnnl)
  find_path(CNNC_DNNL_INCLUDE_DIR oneapi/dnnl/dnnl.hpp)
  find_library(CNNC_DNNL_LIBRARY dnnl)
  if(CNNC_DNNL_INCLUDE_DIR AND CNNC_DNNL_LIBRARY)
    add_library(DNNL::dnnl UNKNOWN IMPORTED)
    set_target_properties(DNNL::dnnl PROPERTIES IMPORTED_LOCATION "${CNNC_DNNL_LIBRARY}"
                          INTERFACE_INCLUDE_DIRECTORIES "${CNNC_DNNL_INCLUDE_DIR}")
  endif()
endif()
if(TARGET DNNL::dnnl AND OpenMP_CXX_FOUND)
  set(CNNC_ONEDNN_FOUND ON)
endif()
