# tests/cases.cmake - one ctest test per test case, read from the `RUN(name);` lines of the test's source.
#
# sage_test_cases(TARGET SOURCE [TIMEOUT seconds] [LABELS label...] [ENVIRONMENT VAR=value...])
# registers TARGET/NAME for every `RUN(NAME);` line of SOURCE (one per line, as tests/check.h wants),
# run as `TARGET NAME` in a process of its own; exit 77 is a skip. The same list is compiled into TARGET
# (CHECK_CASES), so the program run without arguments drives the same cases, and a RUN line this reading
# missed fails the program instead of going unrun. TIMEOUT (default 60 s) is per case, five times longer
# under a sanitizer; the program's own driver uses the same bound.
include_guard(GLOBAL)

set(SAGE_TEST_TIMEOUT_SCALE 1)
if(SAGE_SANITIZE OR SAGE_FUZZ)
  set(SAGE_TEST_TIMEOUT_SCALE 5)
endif()

function(sage_test_cases target src)
  cmake_parse_arguments(arg "" "TIMEOUT" "LABELS;ENVIRONMENT" ${ARGN})
  if(NOT arg_TIMEOUT)
    set(arg_TIMEOUT 60)
  endif()
  math(EXPR timeout "${arg_TIMEOUT} * ${SAGE_TEST_TIMEOUT_SCALE}")
  # Re-read when the source changes: a new RUN line is a new test without touching CMake.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
  file(STRINGS ${src} runs REGEX "^[ \t]*RUN\\([A-Za-z_][A-Za-z0-9_]*\\);")
  set(cases "")
  foreach(line IN LISTS runs)
    string(REGEX REPLACE "^[ \t]*RUN\\(([A-Za-z0-9_]+)\\);.*$" "\\1" case "${line}")
    if(case IN_LIST cases)
      message(FATAL_ERROR "${src}: case ${case} is RUN twice")
    endif()
    list(APPEND cases ${case})
  endforeach()
  if(NOT cases)
    message(FATAL_ERROR "${src}: no `RUN(name);` line")
  endif()
  list(JOIN cases " " names)
  target_compile_definitions(${target} PRIVATE "CHECK_CASES=\"${names}\"" CHECK_TIMEOUT=${timeout})
  foreach(case IN LISTS cases)
    add_test(NAME ${target}/${case} COMMAND ${target} ${case})
    set_tests_properties(${target}/${case} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT ${timeout})
    if(arg_LABELS)
      set_tests_properties(${target}/${case} PROPERTIES LABELS "${arg_LABELS}")
    endif()
    if(arg_ENVIRONMENT)
      set_tests_properties(${target}/${case} PROPERTIES ENVIRONMENT "${arg_ENVIRONMENT}")
    endif()
  endforeach()
endfunction()
