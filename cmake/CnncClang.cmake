# The Clang 19 libraries for building generated code in-process (codegen/compile/jit_clang.cpp).
# Sets CNNC_WITH_CLANG (ON by default when LLVM and Clang 19 are found) and, when ON, the
# interface target cnnc_clang: the two shared libraries and their headers.
#
# Only the shared clang-cpp and LLVM libraries are linked: adding any static component
# (clangBasic, LLVMSupport, ...) puts a second copy of LLVM's global option registry in the
# process, and the two copies register the same options twice and abort at start-up.

set(cnnc_clang_found OFF)
if(NOT DEFINED CNNC_WITH_CLANG OR CNNC_WITH_CLANG)
  # No version in find_package: LLVM's version file accepts only an exact major.minor, and
  # "19" does not match 19.1. The HINTS find Debian's llvm-19-dev; LLVM_DIR overrides them.
  find_package(LLVM CONFIG QUIET HINTS /usr/lib/llvm-19/lib/cmake/llvm)
  if(LLVM_FOUND AND LLVM_VERSION_MAJOR EQUAL 19)
    find_package(Clang CONFIG QUIET
                 HINTS ${LLVM_LIBRARY_DIR}/cmake/clang /usr/lib/llvm-19/lib/cmake/clang)
    if(Clang_FOUND AND TARGET clang-cpp AND TARGET LLVM)
      set(cnnc_clang_found ON)
    endif()
  endif()
endif()

option(CNNC_WITH_CLANG "Build generated code in-process with the Clang 19 libraries"
       ${cnnc_clang_found})

if(CNNC_WITH_CLANG AND NOT cnnc_clang_found)
  message(FATAL_ERROR
          "CNNC_WITH_CLANG is ON but the LLVM and Clang 19 CMake packages were not found "
          "(install llvm-19-dev libclang-19-dev clang-19, or set LLVM_DIR and Clang_DIR)")
endif()

if(NOT CNNC_WITH_CLANG)
  message(STATUS "cnnc: in-process build off (no LLVM/Clang 19, or CNNC_WITH_CLANG=OFF): "
                 "generated code is built by a compiler subprocess")
  return()
endif()

# The driver path only anchors the driver's header search (libstdc++ next to the GCC install);
# nothing is ever run from it. The resource directory holds Clang's own headers (immintrin.h).
set(CNNC_CLANG_DRIVER ${LLVM_TOOLS_BINARY_DIR}/clang)
set(CNNC_CLANG_RESOURCE_DIR ${LLVM_LIBRARY_DIR}/clang/${LLVM_VERSION_MAJOR})
if(NOT EXISTS ${CNNC_CLANG_RESOURCE_DIR}/include/immintrin.h)
  message(FATAL_ERROR "cnnc: Clang's resource directory ${CNNC_CLANG_RESOURCE_DIR} lacks "
                      "include/immintrin.h (install libclang-common-19-dev)")
endif()
message(STATUS "cnnc: in-process build with Clang ${LLVM_PACKAGE_VERSION} "
               "(resource dir ${CNNC_CLANG_RESOURCE_DIR})")

add_library(cnnc_clang INTERFACE)
# SYSTEM: LLVM's headers are not warning-clean under -Wshadow -Wpedantic -Werror.
target_include_directories(cnnc_clang SYSTEM INTERFACE ${LLVM_INCLUDE_DIRS} ${CLANG_INCLUDE_DIRS})
target_link_libraries(cnnc_clang INTERFACE clang-cpp LLVM)
target_compile_definitions(cnnc_clang INTERFACE
  CNNC_CLANG_DRIVER="${CNNC_CLANG_DRIVER}"
  CNNC_CLANG_RESOURCE_DIR="${CNNC_CLANG_RESOURCE_DIR}")
