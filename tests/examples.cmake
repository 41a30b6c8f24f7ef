# Every example runs as a test, its output compared with tests/examples/*.expected (sorted: lines from
# parallel instances interleave).
set(RUNEX ${CMAKE_CURRENT_SOURCE_DIR}/examples/run_example.sh)
set(EXP ${CMAKE_CURRENT_SOURCE_DIR}/examples)
add_test(NAME example_parallelism COMMAND ${RUNEX} ${EXP}/parallelism.expected 0 stdout
  "s/^SINK\\[[0-9]\\]/SINK[*]/" $<TARGET_FILE:parallelism>)
add_test(NAME example_services COMMAND ${RUNEX} ${EXP}/services.expected 0 stdout - $<TARGET_FILE:services>)
add_test(NAME example_resources COMMAND ${RUNEX} ${EXP}/resources.expected 0 stdout - $<TARGET_FILE:resources>)
add_test(NAME example_resources_too_small
  COMMAND ${RUNEX} ${EXP}/resources-small.expected 1 stderr - $<TARGET_FILE:resources> --small)
add_test(NAME example_wordcount COMMAND ${EXP}/wordcount.sh $<TARGET_FILE:wordcount>)
add_test(NAME example_refine COMMAND ${RUNEX} ${EXP}/refine.expected 0 stdout - $<TARGET_FILE:refine>)
set_tests_properties(example_parallelism example_services example_resources example_resources_too_small
  example_wordcount example_refine PROPERTIES LABELS runtime)
