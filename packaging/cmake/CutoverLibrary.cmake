# CutoverLibrary.cmake - libcutover (shared and static), its headers,
# pkg-config file and CMake package config, and their install rules.
# Included by the top-level CMakeLists.txt after cutover_core is defined.

file(GLOB CUTOVER_API_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/api/*.c)
set(CUTOVER_API_MAP ${CMAKE_SOURCE_DIR}/src/api/libcutover.map)

# include/cutover/version.h is generated from the project version.
configure_file(${CMAKE_SOURCE_DIR}/include/cutover/version.h.in
  ${CMAKE_BINARY_DIR}/include/cutover/version.h @ONLY)

add_library(cutover_api_obj OBJECT ${CUTOVER_API_SOURCES})
set_target_properties(cutover_api_obj PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(cutover_api_obj PUBLIC
  ${CMAKE_SOURCE_DIR}/include ${CMAKE_BINARY_DIR}/include)
target_link_libraries(cutover_api_obj PRIVATE cutover_core)

# libcutover.so.0: the API objects, and what they need of cutover_core
# pulled from the static archive; the version script keeps it all local
# but the cutover_ names.
add_library(cutover_shared SHARED $<TARGET_OBJECTS:cutover_api_obj>)
set_target_properties(cutover_shared PROPERTIES
  OUTPUT_NAME cutover EXPORT_NAME cutover
  VERSION ${PROJECT_VERSION} SOVERSION 0
  LINK_DEPENDS ${CUTOVER_API_MAP})
target_link_libraries(cutover_shared PRIVATE cutover_core)
target_link_options(cutover_shared PRIVATE
  -Wl,--version-script=${CUTOVER_API_MAP} -Wl,--no-undefined)
target_include_directories(cutover_shared INTERFACE
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>
  $<BUILD_INTERFACE:${CMAKE_BINARY_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

# libcutover.a: the API and every object of the core linked into one
# relocatable object whose symbols but the cutover_ ones are made local, so
# that a static link sees the API alone, as the .so's users do (the core's
# co_ names cannot clash with a program's).  Its dependencies are shared:
# `pkg-config --print-requires-private cutover`.
set(CUTOVER_STATIC_LIB ${CMAKE_BINARY_DIR}/libcutover.a)
set(CUTOVER_PRELINKED ${CMAKE_BINARY_DIR}/libcutover-prelinked.o)
add_custom_command(OUTPUT ${CUTOVER_STATIC_LIB}
  COMMAND ${CMAKE_LINKER} -r -o ${CUTOVER_PRELINKED}
    $<TARGET_OBJECTS:cutover_api_obj> $<TARGET_OBJECTS:cutover_core>
  COMMAND ${CMAKE_OBJCOPY} --wildcard --keep-global-symbol=cutover_* ${CUTOVER_PRELINKED}
  COMMAND ${CMAKE_COMMAND} -E rm -f ${CUTOVER_STATIC_LIB}
  COMMAND ${CMAKE_AR} rcs ${CUTOVER_STATIC_LIB} ${CUTOVER_PRELINKED}
  DEPENDS cutover_api_obj cutover_core
    $<TARGET_OBJECTS:cutover_api_obj> $<TARGET_OBJECTS:cutover_core>
  COMMENT "Linking libcutover.a (cutover_ symbols global, the rest local)"
  COMMAND_EXPAND_LISTS VERBATIM)
add_custom_target(cutover_static ALL DEPENDS ${CUTOVER_STATIC_LIB})

# ---- install ----
include(CMakePackageConfigHelpers)
set(CUTOVER_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/cutover)

install(TARGETS cutover_shared EXPORT cutoverTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${CUTOVER_STATIC_LIB} DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/cutover
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(FILES ${CMAKE_BINARY_DIR}/include/cutover/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cutover)

# The example ships with the docs, buildable where it lands.
install(FILES ${CMAKE_SOURCE_DIR}/examples/claim.c ${CMAKE_SOURCE_DIR}/examples/CMakeLists.txt
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# cutover.pc: relocatable (prefix from ${pcfiledir}), so that
# `cmake --install --prefix P` and DESTDIR installs both work.
# Paths are relative to the .pc file (it lives in libdir/pkgconfig), so an
# absolute CMAKE_INSTALL_LIBDIR or INCLUDEDIR works as well.
file(RELATIVE_PATH CUTOVER_PC_TO_PREFIX
  ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
file(RELATIVE_PATH CUTOVER_PC_TO_INCLUDEDIR
  ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_FULL_INCLUDEDIR})
string(REGEX REPLACE "/$" "" CUTOVER_PC_TO_PREFIX "${CUTOVER_PC_TO_PREFIX}")
configure_file(${CMAKE_SOURCE_DIR}/packaging/pkgconfig/cutover.pc.in
  ${CMAKE_BINARY_DIR}/cutover.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/cutover.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# find_package(cutover): cutover::cutover, the shared library.
install(EXPORT cutoverTargets NAMESPACE cutover::
  DESTINATION ${CUTOVER_CMAKE_DIR})
configure_package_config_file(${CMAKE_SOURCE_DIR}/packaging/cmake/cutoverConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cutoverConfig.cmake INSTALL_DESTINATION ${CUTOVER_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cutoverConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cutoverConfig.cmake
  ${CMAKE_BINARY_DIR}/cutoverConfigVersion.cmake DESTINATION ${CUTOVER_CMAKE_DIR})
