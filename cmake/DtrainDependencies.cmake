# Finds every dependency of dtrain and defines imported targets for those that have no
# CMake config of their own (cuDNN, NCCL).
#
# Required always: MPI (C), HDF5 (C), Boost (headers, for Asio), Threads, a CPU BLAS
# (OpenBLAS preferred), oneDNN, OpenMP, libpng, libjpeg, GoogleTest when tests are built.
# Optional: the CUDA toolkit (cudart, cuBLAS, cuDNN, NCCL). DTRAIN_HAVE_CUDA says whether
# the CUDA backend is built.

find_package(Threads REQUIRED)
find_package(MPI REQUIRED COMPONENTS C)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(Boost 1.71 REQUIRED)

set(BLA_VENDOR OpenBLAS)
find_package(BLAS)
if(NOT BLAS_FOUND)
  unset(BLA_VENDOR)
  find_package(BLAS REQUIRED)
endif()
# Note [One thread pool]: Debian's default OpenBLAS runs its own pthreads, while the
# kernels and oneDNN run on OpenMP's. On a node where the ranks' threads fill the cores,
# OpenMP's workers spin after each parallel region on the cores OpenBLAS's threads need,
# and a 2-thread seq2seq step ran 4-5x slower than a 1-thread one (PyTorch, also built
# on it, likewise). OpenBLAS's OpenMP build (libopenblas0-openmp) shares OpenMP's pool, so
# prefer it: link it by path and put its folder on the run path, since its soname is the
# same as the pthread build's (which the system alternative points to).
option(DTRAIN_OPENMP_BLAS "Prefer OpenBLAS's OpenMP build (libopenblas0-openmp) when installed" ON)
if(DTRAIN_OPENMP_BLAS AND BLAS_FOUND)
  find_file(DTRAIN_OPENBLAS_OPENMP libopenblas.so.0
    PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp /usr/lib/openblas-openmp NO_DEFAULT_PATH)
  if(DTRAIN_OPENBLAS_OPENMP)
    get_filename_component(_openblas_omp_dir ${DTRAIN_OPENBLAS_OPENMP} DIRECTORY)
    set(BLAS_LIBRARIES ${DTRAIN_OPENBLAS_OPENMP})
    list(APPEND CMAKE_BUILD_RPATH ${_openblas_omp_dir})
    list(APPEND CMAKE_INSTALL_RPATH ${_openblas_omp_dir})
    message(STATUS "BLAS: OpenBLAS, OpenMP build (${DTRAIN_OPENBLAS_OPENMP})")
  else()
    message(STATUS "BLAS: ${BLAS_LIBRARIES} (install libopenblas0-openmp for OpenBLAS's OpenMP build: "
                   "Note [One thread pool] in cmake/DtrainDependencies.cmake)")
  endif()
endif()
find_path(CBLAS_INCLUDE_DIR cblas.h
  PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas /usr/include
  REQUIRED)

# oneDNN (Debian's libdnnl-dev, OpenMP runtime): the fast f32 CPU convolution path.
# Found by hand: Debian's dnnl CMake config insists on OpenCL headers for its GPU
# runtime, which dtrain does not use.
find_library(DNNL_LIBRARY dnnl REQUIRED)
find_path(DNNL_INCLUDE_DIR oneapi/dnnl/dnnl.hpp REQUIRED)
add_library(dtrain_dnnl INTERFACE)
target_include_directories(dtrain_dnnl SYSTEM INTERFACE ${DNNL_INCLUDE_DIR})
target_link_libraries(dtrain_dnnl INTERFACE ${DNNL_LIBRARY})
# OpenMP: threads for the CPU kernels (the same runtime oneDNN uses); OMP_NUM_THREADS
# sets the count, as for PyTorch.
find_package(OpenMP REQUIRED COMPONENTS CXX)
# libpng and libjpeg(-turbo): image files for demos, sample grids, folders of images and
# images stored encoded in datasets.
find_package(PNG REQUIRED)
find_package(JPEG REQUIRED)

# HDF5 as one target.
add_library(dtrain_hdf5 INTERFACE)
target_include_directories(dtrain_hdf5 SYSTEM INTERFACE ${HDF5_INCLUDE_DIRS})
target_link_libraries(dtrain_hdf5 INTERFACE ${HDF5_LIBRARIES})
target_compile_definitions(dtrain_hdf5 INTERFACE ${HDF5_DEFINITIONS})

add_library(dtrain_blas INTERFACE)
target_include_directories(dtrain_blas SYSTEM INTERFACE ${CBLAS_INCLUDE_DIR})
target_link_libraries(dtrain_blas INTERFACE ${BLAS_LIBRARIES})

# ---- CUDA (optional) --------------------------------------------------------------
set(DTRAIN_HAVE_CUDA OFF)
if(DTRAIN_ENABLE_CUDA)
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    # nvcc is often not on PATH; the toolkit's usual home is a sensible default.
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "CUDA compiler")
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures")
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)  # CMake 3.25 has no C++20 dialect flag for nvcc
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    get_filename_component(_cuda_root "${CUDAToolkit_LIBRARY_DIR}" DIRECTORY)
    find_library(CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} ${_cuda_root}/lib64 ENV CUDNN_ROOT)
    find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV CUDNN_ROOT)
    find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ${_cuda_root}/lib64 ENV NCCL_ROOT)
    find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV NCCL_ROOT)
    if(NOT CUDNN_LIBRARY OR NOT CUDNN_INCLUDE_DIR)
      message(FATAL_ERROR "nvcc was found but cuDNN was not: install cuDNN 9 or pass -DCUDNN_LIBRARY=... -DCUDNN_INCLUDE_DIR=..., or -DDTRAIN_ENABLE_CUDA=OFF")
    endif()
    if(NOT NCCL_LIBRARY OR NOT NCCL_INCLUDE_DIR)
      message(FATAL_ERROR "nvcc was found but NCCL was not: install NCCL 2 or pass -DNCCL_LIBRARY=... -DNCCL_INCLUDE_DIR=..., or -DDTRAIN_ENABLE_CUDA=OFF")
    endif()
    add_library(dtrain::cudnn UNKNOWN IMPORTED)
    set_target_properties(dtrain::cudnn PROPERTIES IMPORTED_LOCATION ${CUDNN_LIBRARY}
      INTERFACE_INCLUDE_DIRECTORIES ${CUDNN_INCLUDE_DIR})
    add_library(dtrain::nccl UNKNOWN IMPORTED)
    set_target_properties(dtrain::nccl PROPERTIES IMPORTED_LOCATION ${NCCL_LIBRARY}
      INTERFACE_INCLUDE_DIRECTORIES ${NCCL_INCLUDE_DIR})
    set(DTRAIN_HAVE_CUDA ON)
    message(STATUS "CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}, cuDNN ${CUDNN_LIBRARY}, NCCL ${NCCL_LIBRARY}")
  else()
    message(STATUS "nvcc not found: the CUDA backend is replaced by stubs (pass -DCMAKE_CUDA_COMPILER=/path/to/nvcc to build it)")
  endif()
endif()

if(DTRAIN_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
