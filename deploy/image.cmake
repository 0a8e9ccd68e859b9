# Settings for the image's build of gng (deploy/Containerfile), read by CMake through the
# CMAKE_TOOLCHAIN_FILE environment variable (CMake >= 3.21) when scripts/setup.sh configures a
# fresh build/: setup.sh has no switch of its own for them. They are cache entries, so the
# project's option() calls keep them.
set(GNG_TESTS OFF CACHE BOOL "the image needs no tests")
set(GNG_BENCH OFF CACHE BOOL "the image needs no benchmarks")
# -march=native would tie the image to the CPU that built it; an image runs elsewhere.
set(GNG_NATIVE OFF CACHE BOOL "portable code for an image")
