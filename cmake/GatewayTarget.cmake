# Common options for the project's own targets: warnings as errors, sanitizers.
set(GW_SANITIZE_FLAGS "")
if(GW_SANITIZE)
  set(GW_SANITIZE_FLAGS "-fsanitize=${GW_SANITIZE}" -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_compile_options(${GW_SANITIZE_FLAGS})
  add_link_options(${GW_SANITIZE_FLAGS})
endif()

# simdjson's on-demand parser runs the implementation the code is compiled for: without
# AVX2 it is the scalar fallback. x86-64-v3 (AVX2, BMI2; every x86 server since 2015)
# is the default; the gateway checks the CPU at start. -DGW_MARCH= for a baseline build.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(GW_MARCH "x86-64-v3" CACHE STRING "-march for the project's code (empty: compiler default)")
else()
  set(GW_MARCH "" CACHE STRING "-march for the project's code (empty: compiler default)")
endif()
if(GW_MARCH)
  add_compile_options(-march=${GW_MARCH})
endif()

function(gw_target_options target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wno-missing-field-initializers)
  if(GW_SANITIZE)
    # GCC 12 at -O1 with sanitizers reports maybe-uninitialized inside boost::optional;
    # the optimised (-O2) build keeps the warning on.
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
  endif()
endfunction()

# gw_library(NAME name SOURCES ... DEPS ...): libs/<name> as target gw_<name>, alias gw::<name>.
function(gw_library)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(gw_${ARG_NAME} STATIC ${ARG_SOURCES})
  add_library(gw::${ARG_NAME} ALIAS gw_${ARG_NAME})
  target_include_directories(gw_${ARG_NAME} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_link_libraries(gw_${ARG_NAME} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  gw_target_options(gw_${ARG_NAME})
endfunction()
