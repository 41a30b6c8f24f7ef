# Tutorial programs: every docs/tutorials/examples/NAME.c becomes build/tutorials/NAME (target tutorial_NAME),
# linked to the shared library, and runs as ctest case tutorial_NAME (embedded; it must exit 0).
# tutorial_distributed_commands checks that every shell command of docs/tutorials/distributed-pipeline.md is run,
# with the same text, by tests/integration/test_cluster.sh (see the script's header).
include_guard(GLOBAL)
file(GLOB SAGE_TUTORIAL_EXAMPLES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/tutorials/examples/*.c)
foreach(src ${SAGE_TUTORIAL_EXAMPLES})
  get_filename_component(name ${src} NAME_WE)
  add_executable(tutorial_${name} ${src})
  target_compile_options(tutorial_${name} PRIVATE ${SAGE_WARNINGS})
  target_link_libraries(tutorial_${name} PRIVATE sage)
  set_target_properties(tutorial_${name} PROPERTIES OUTPUT_NAME ${name}
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tutorials)
  add_test(NAME tutorial_${name} COMMAND tutorial_${name})
  set_tests_properties(tutorial_${name} PROPERTIES LABELS "runtime;tutorial" TIMEOUT 120)
endforeach()
add_test(NAME tutorial_distributed_commands
  COMMAND ${PROJECT_SOURCE_DIR}/docs/tutorials/examples/check-distributed-commands.sh
          ${PROJECT_SOURCE_DIR}/docs/tutorials/distributed-pipeline.md
          ${CMAKE_CURRENT_LIST_DIR}/integration/test_cluster.sh)
set_tests_properties(tutorial_distributed_commands PROPERTIES LABELS tutorial)
