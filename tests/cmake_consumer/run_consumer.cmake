# run_consumer.cmake: configure, build and run the consumer project; edit its model and check
# that the next build regenerates the code. Any failure is fatal.
#   cmake -DCNNC=<cnnc> -DMODULE=<CnncModel.cmake> -DSRC=<project> -DBIN=<scratch dir>
#         [-DGENERATOR=<generator>] [-DCXX=<compiler>] -P run_consumer.cmake

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cmake_consumer: ${what} failed (${rc}): ${ARGN}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

# A fresh copy of the project, so that the edit below never touches the source tree.
file(REMOVE_RECURSE "${BIN}")
file(COPY "${SRC}/" DESTINATION "${BIN}/src")
set(generator_args)
if(GENERATOR)
  set(generator_args -G "${GENERATOR}")
endif()
if(CXX)
  list(APPEND generator_args "-DCMAKE_CXX_COMPILER=${CXX}")
endif()

run(configure "${CMAKE_COMMAND}" -S "${BIN}/src" -B "${BIN}/build" ${generator_args}
    -DCMAKE_BUILD_TYPE=Release "-DCNNC_MODEL_CMAKE=${MODULE}" "-DCNNC_EXECUTABLE=${CNNC}")
run(build "${CMAKE_COMMAND}" --build "${BIN}/build" -j2)
run(consumer "${BIN}/build/consumer")
if(NOT last_output MATCHES "consumer ok")
  message(FATAL_ERROR "cmake_consumer: the consumer did not print 'consumer ok'")
endif()

# Editing the .cnn file must regenerate the code (its banner carries the file's sha256).
set(gen "${BIN}/build/tiny/tiny.gen.cpp")
file(READ "${gen}" before)
file(APPEND "${BIN}/src/tiny.cnn" "# edited by run_consumer.cmake\n")
run(rebuild "${CMAKE_COMMAND}" --build "${BIN}/build" -j2)
file(READ "${gen}" after)
if(before STREQUAL after)
  message(FATAL_ERROR "cmake_consumer: editing tiny.cnn did not regenerate ${gen}")
endif()
run(consumer "${BIN}/build/consumer")
message("cmake_consumer: configure, build, run and regeneration all passed")
