# Every third-party imported target is made here, once. All come from Debian packages
# (scripts/install-deps.sh installs them).
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(ZLIB REQUIRED)  # crc32 for AWS event-stream frames (zlib's is several times faster than Boost.CRC)
find_package(simdjson REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(prometheus-cpp REQUIRED)
find_package(PkgConfig REQUIRED)

# CAF 0.17.6 ships no CMake config.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
if(NOT TARGET CAF::core)
  add_library(CAF::core INTERFACE IMPORTED)
  set_target_properties(CAF::core PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${CAF_CORE_LIBRARY};Threads::Threads")
endif()

# yaml-cpp 0.7 exports a target without namespace.
if(NOT TARGET yaml::yaml-cpp)
  add_library(yaml::yaml-cpp INTERFACE IMPORTED)
  set_target_properties(yaml::yaml-cpp PROPERTIES INTERFACE_LINK_LIBRARIES yaml-cpp)
endif()

if(GW_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(GW_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
endif()

# libpqxx 6.4 (and libpq) ship pkg-config files only.
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)

# hiredis 0.14 ships a pkg-config file only (and no Asio adapter: libs/redis has one).
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)

# jemalloc (libjemalloc-dev) as llm-gateway's allocator: per-thread caches with cheap
# frees on other threads (requests' records are made on io threads and freed by the
# exporters and the ledger), where glibc's malloc spent 15% of a traced request's
# instructions (docs/PERFORMANCE.md). Not with sanitizers (they bring their own).
option(GW_JEMALLOC "Link llm-gateway with jemalloc" ON)
if(GW_JEMALLOC AND NOT GW_SANITIZE)
  pkg_check_modules(JEMALLOC REQUIRED IMPORTED_TARGET jemalloc)
endif()
