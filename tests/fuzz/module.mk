# tests/fuzz/: libFuzzer targets (clang). Filled in by the fuzzing work; see README there.
