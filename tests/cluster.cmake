# `sage cluster` against real Slurm daemons (root, slurm-wlm 22.05, munge, jq; iproute2 for the
# multi-host part). Without them the script prints "skipped: <reason>" and exits 77: ctest shows
# the test as skipped, never as passed. Run only this: ctest -L cluster --output-on-failure
# The tutorial programs (cluster_wordcount, cluster_monitor) come from tutorials.cmake; part 3 runs the
# commands of docs/tutorials/distributed-pipeline.md.
include(${CMAKE_CURRENT_LIST_DIR}/tutorials.cmake)
add_test(NAME test_cluster
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_cluster.sh $<TARGET_FILE:sage-cli>
          $<TARGET_FILE:test_jobmanager> $<TARGET_FILE:parallelism>
          $<TARGET_FILE:wordcount> $<TARGET_FILE:resources>
          $<TARGET_FILE:tutorial_cluster_wordcount> $<TARGET_FILE:tutorial_cluster_monitor>
          $<TARGET_FILE:test_jm_restart>)
set_tests_properties(test_cluster PROPERTIES
  LABELS cluster
  TIMEOUT 400
  SKIP_RETURN_CODE 77
  RUN_SERIAL TRUE)
