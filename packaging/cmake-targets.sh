# shellcheck shell=bash
# The CMake flags llama.cpp is built with for each install target: the one table that install.sh
# (llama-cpp-python's CMAKE_ARGS) and pi-check.sh (the emulated Pi 5 build) both read, so the
# build checked under emulation is the build a Pi gets.

# Prints TARGET's flags; fails for an unknown target.
cmake_args_for() {
  case $1 in
    cpu) echo "-DGGML_NATIVE=on" ;;
    openblas) echo "-DGGML_NATIVE=on -DGGML_BLAS=on -DGGML_BLAS_VENDOR=OpenBLAS" ;;
    cuda) echo "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=native" ;;
    metal) echo "-DGGML_METAL=on" ;;
    vulkan) echo "-DGGML_VULKAN=on" ;;
    # Pi 5: Cortex-A76 is armv8.2-a with the dot-product and fp16 extensions that llama.cpp's
    # ARM kernels (and its Q4_0 repacking) use; spelled out so the build does not depend on the
    # compiler's -mcpu=native detection.
    pi5) echo "-DGGML_NATIVE=off -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" ;;
    *) return 1 ;;
  esac
}
