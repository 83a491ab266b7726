# Common options for the project's own targets: warnings as errors, sanitizers.
set(GW_SANITIZE_FLAGS "")
if(GW_SANITIZE)
  set(GW_SANITIZE_FLAGS "-fsanitize=${GW_SANITIZE}" -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_compile_options(${GW_SANITIZE_FLAGS})
  add_link_options(${GW_SANITIZE_FLAGS})
endif()

function(gw_target_options target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wno-missing-field-initializers)
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
