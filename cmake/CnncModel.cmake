# CnncModel.cmake: cnn_add_model(), which turns a .cnn file into a static library at build time.
#
#   cnn_add_model(<target> MODEL <file.cnn> [BATCH <n>] [CNNC <cnnc executable or target>])
#
# Runs `cnnc gen <file.cnn> -o ${CMAKE_CURRENT_BINARY_DIR}/<target> [--batch n]` when the .cnn
# file or cnnc changes, and compiles <name>.gen.cpp into the STATIC library <target>, whose users
# get <name>.gen.hpp and cnnc_abi.h on their include path. <name> is read from the file's
# `model NAME` line when CMake configures; editing that line re-runs the configure step.
# cnnc is the CNNC argument, else a `cnnc` target of the same build, else CNNC_EXECUTABLE
# (find_program). See docs/cmake.md.
include_guard(GLOBAL)

# The directory of cnnc_abi.h: runtime/ of the cnnc source tree this file belongs to; when
# that is missing (an install), cnn_add_model() looks next to the cnnc executable.
if(EXISTS "${CMAKE_CURRENT_LIST_DIR}/../runtime/cnnc_abi.h")
  get_filename_component(_cnnc_abi_default "${CMAKE_CURRENT_LIST_DIR}/../runtime" ABSOLUTE)
  set(CNNC_ABI_INCLUDE_DIR "${_cnnc_abi_default}" CACHE PATH "Directory holding cnnc_abi.h")
endif()

function(cnn_add_model target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "MODEL;BATCH;CNNC" "")
  if(NOT ARG_MODEL)
    message(FATAL_ERROR "cnn_add_model(${target}): MODEL <file.cnn> is required")
  endif()
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "cnn_add_model(${target}): unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  get_filename_component(model "${ARG_MODEL}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${model}")
    message(FATAL_ERROR "cnn_add_model(${target}): no such file: ${model}")
  endif()

  # The model's name decides the generated file names: the first `model NAME` statement.
  file(STRINGS "${model}" lines REGEX "^[ \t]*model[ \t]+[A-Za-z0-9_]+")
  set(line "")
  if(lines)
    list(GET lines 0 line)
  endif()
  if(NOT line MATCHES "^[ \t]*model[ \t]+([A-Za-z0-9_]+)")
    message(FATAL_ERROR "cnn_add_model(${target}): no 'model NAME' line in ${model}")
  endif()
  set(name "${CMAKE_MATCH_1}")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${model}")

  # cnnc: the argument, else this build's target, else a program found on the PATH.
  if(ARG_CNNC AND TARGET "${ARG_CNNC}")
    set(cnnc "$<TARGET_FILE:${ARG_CNNC}>")
    set(cnnc_dep "${ARG_CNNC}")
  elseif(ARG_CNNC)
    get_filename_component(cnnc "${ARG_CNNC}" ABSOLUTE)
    set(cnnc_dep "${cnnc}")
  elseif(TARGET cnnc)
    set(cnnc "$<TARGET_FILE:cnnc>")
    set(cnnc_dep cnnc)
  else()
    find_program(CNNC_EXECUTABLE cnnc DOC "The cnnc compiler used by cnn_add_model()")
    if(NOT CNNC_EXECUTABLE)
      message(FATAL_ERROR "cnn_add_model(${target}): cnnc not found; pass CNNC <path> "
                          "or -DCNNC_EXECUTABLE=<path>")
    endif()
    set(cnnc "${CNNC_EXECUTABLE}")
    set(cnnc_dep "${CNNC_EXECUTABLE}")
  endif()

  if(NOT CNNC_ABI_INCLUDE_DIR AND NOT cnnc MATCHES "^\\$<")
    get_filename_component(prefix "${cnnc}" DIRECTORY)
    find_path(CNNC_ABI_INCLUDE_DIR cnnc_abi.h HINTS "${prefix}/../include" "${prefix}/../runtime"
              DOC "Directory holding cnnc_abi.h")
  endif()
  if(NOT CNNC_ABI_INCLUDE_DIR)
    message(FATAL_ERROR "cnn_add_model(${target}): cnnc_abi.h not found; "
                        "set -DCNNC_ABI_INCLUDE_DIR=<dir>")
  endif()

  # Run from the source directory with a relative path, so that the banner of the generated
  # code names the model as the user wrote it and carries no absolute path.
  set(out "${CMAKE_CURRENT_BINARY_DIR}/${target}")
  file(RELATIVE_PATH model_rel "${CMAKE_CURRENT_SOURCE_DIR}" "${model}")
  set(batch_args)
  if(ARG_BATCH)
    set(batch_args --batch "${ARG_BATCH}")
  endif()
  add_custom_command(
    OUTPUT "${out}/${name}.gen.cpp" "${out}/${name}.gen.hpp"
    COMMAND "${cnnc}" gen "${model_rel}" -o "${out}" ${batch_args}
    DEPENDS "${model}" ${cnnc_dep}
    WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}"
    COMMENT "cnnc gen ${model_rel}: ${target}/${name}.gen.cpp"
    VERBATIM)

  # Users' builds never fail on a warning in generated code: -Wno-error comes after any
  # -Werror of the parent's flags or directory options, and COMPILE_WARNING_AS_ERROR is off.
  add_library(${target} STATIC "${out}/${name}.gen.cpp" "${out}/${name}.gen.hpp")
  target_include_directories(${target} PUBLIC "${out}" "${CNNC_ABI_INCLUDE_DIR}")
  target_compile_features(${target} PUBLIC cxx_std_17)
  target_compile_options(${target} PRIVATE
                         "$<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-O2;-ffp-contract=off;-Wno-error>")
  set_target_properties(${target} PROPERTIES CXX_STANDARD 17 CXX_EXTENSIONS OFF
                        POSITION_INDEPENDENT_CODE ON COMPILE_WARNING_AS_ERROR OFF)
endfunction()
