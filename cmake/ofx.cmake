# The OpenFX plugin bundle: Rerender.ofx.bundle/Contents/<ARCH>/Rerender.ofx, installed into the
# `rerender` package (beside _native) for `rerender ofx install` to copy where hosts look.
# The plugin is a thin bridge (no Python, no core): it links only zlib (EXR ZIP blocks), and
# exports nothing but the two OFX entry points, so that it cannot clash with the host's libraries.

# The architecture folder names of the OpenFX packaging specification.
if(WIN32)
  set(RERENDER_OFX_ARCH Win64)
elseif(APPLE)
  set(RERENDER_OFX_ARCH MacOS)
elseif(CMAKE_SYSTEM_NAME STREQUAL "Linux" AND CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(RERENDER_OFX_ARCH Linux-x86-64)
else()
  set(RERENDER_OFX_ARCH "")
endif()
# zlib linked statically where a static library exists (the plugin then depends on libc alone and
# a wheel repair has nothing to graft into a bundle that is copied elsewhere), else the system's.
find_package(ZLIB QUIET)
if(NOT WIN32)
  find_library(RERENDER_ZLIB_STATIC NAMES libz.a)
endif()
if(NOT RERENDER_OFX_ARCH OR NOT ZLIB_FOUND)
  message(STATUS "rerender: OpenFX bundle not built (no OpenFX architecture folder for "
                 "${CMAKE_SYSTEM_NAME}/${CMAKE_SYSTEM_PROCESSOR}, or zlib missing)")
  return()
endif()

# the plugin's version: the package's major.minor
set(RERENDER_OFX_VERSION "${SKBUILD_PROJECT_VERSION}")
if(NOT RERENDER_OFX_VERSION)
  file(READ ${CMAKE_SOURCE_DIR}/pyproject.toml _pyproject)
  string(REGEX MATCH "\nversion = \"([0-9]+\\.[0-9]+)" _m "${_pyproject}")
  set(RERENDER_OFX_VERSION "${CMAKE_MATCH_1}")
endif()
string(REGEX MATCH "^([0-9]+)\\.([0-9]+)" _m "${RERENDER_OFX_VERSION}")

file(GLOB RERENDER_OFX_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/csrc/ofx/*.cpp)
add_library(rerender_ofx MODULE ${RERENDER_OFX_SOURCES})
set_target_properties(rerender_ofx PROPERTIES OUTPUT_NAME Rerender PREFIX "" SUFFIX ".ofx"
                      CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
                      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/Rerender.ofx.bundle/Contents/${RERENDER_OFX_ARCH})
target_compile_definitions(rerender_ofx PRIVATE RR_OFX_VERSION_MAJOR=${CMAKE_MATCH_1}
                           RR_OFX_VERSION_MINOR=${CMAKE_MATCH_2} RR_OFX_VERSION_STRING="${RERENDER_OFX_VERSION}")
if(RERENDER_ZLIB_STATIC)
  target_include_directories(rerender_ofx PRIVATE ${ZLIB_INCLUDE_DIRS})
  target_link_libraries(rerender_ofx PRIVATE ${RERENDER_ZLIB_STATIC})
else()
  target_link_libraries(rerender_ofx PRIVATE ZLIB::ZLIB)
endif()
target_compile_options(rerender_ofx PRIVATE $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-Wall -Wextra>)
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  # Hosts ship their own C++ runtime (often older than ours): carry libstdc++ inside the plugin and
  # export only the OFX entry points (the version script hides everything else, the runtime included).
  include(CheckLinkerFlag)
  check_linker_flag(CXX "-static-libstdc++" RERENDER_OFX_STATIC_CXX)
  if(RERENDER_OFX_STATIC_CXX)
    target_link_options(rerender_ofx PRIVATE -static-libstdc++ -static-libgcc)
  endif()
  target_link_options(rerender_ofx PRIVATE -Wl,--version-script=${CMAKE_SOURCE_DIR}/csrc/ofx/exports.map
                      -Wl,--no-undefined)
  target_link_libraries(rerender_ofx PRIVATE pthread)
endif()

install(TARGETS rerender_ofx LIBRARY DESTINATION rerender/Rerender.ofx.bundle/Contents/${RERENDER_OFX_ARCH})
message(STATUS "rerender: OpenFX bundle Rerender.ofx.bundle/Contents/${RERENDER_OFX_ARCH} (version ${RERENDER_OFX_VERSION})")
