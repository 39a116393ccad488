# CutoverMan.cmake - the manual pages: man/*.scd built into roff with
# scdoc (the Debian package `scdoc`, scripts/setup) when it is installed,
# into ${CMAKE_BINARY_DIR}/man, and installed to share/man/manN.  Without
# scdoc the pages are skipped, saying so (tests/packaging/test_man skips).

find_program(CUTOVER_SCDOC scdoc)
file(GLOB CUTOVER_MAN_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/man/*.scd)
if(NOT CUTOVER_SCDOC)
  message(STATUS "scdoc not found: the man pages (man/*.scd) are not built")
  return()
endif()

set(CUTOVER_MAN_PAGES)
foreach(src ${CUTOVER_MAN_SOURCES})
  get_filename_component(page ${src} NAME)
  string(REGEX REPLACE "\\.scd$" "" page ${page})        # cutover.1
  string(REGEX REPLACE "^.*\\.([1-9])$" "\\1" section ${page})
  set(out ${CMAKE_BINARY_DIR}/man/${page})
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND ${CUTOVER_SCDOC} < ${src} > ${out}
    DEPENDS ${src} VERBATIM)
  list(APPEND CUTOVER_MAN_PAGES ${out})
  install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(cutover_man ALL DEPENDS ${CUTOVER_MAN_PAGES})
