# normlab -- see README.md. Each configuration builds into its own directory under build/.
#   make                 the normlab binary and libnormlab.a (build/release)
#   make test            build and run the test suite (needs /usr/bin/python3 with torch for the twin tests)
#   make asan / ubsan    the test suite under AddressSanitizer / UndefinedBehaviorSanitizer
#   make bench           the speed benchmark against the PyTorch twin (bench/bench.sh)
#   make bench-bpe       GPT-2 tokenizer throughput on one core (bench/bpe_bench.sh)
#   make bench-denormal  lr 1e-2 against lr 1e-3 speed after step 80 (bench/denormal.sh, subnormal floats)
#   make WERROR=1        warnings are errors (CI)
#   make install PREFIX=DIR   the binary, libnormlab.a, libnormlab.so, include/normlab.h, normlab.pc, share/normlab (data/)
#   make fuzz            each libFuzzer harness in fuzz/ for FUZZ_SECONDS (60) seconds (clang)
#   make fuzz-regress    each harness once over its seed corpus and past crashes (CI)
#   make valgrind        a short training run under valgrind: no leaks, no invalid accesses
#   make USE_MPI=1       the MPI build (mpicc, src/comm_mpi.c) in build/mpi; make test-mpi runs its tests
#   make USE_CUDA=1      the CUDA build (nvcc, cuBLASLt; src/cuda/) in build/cuda: train --device cuda
#   make USE_CUDA=1 USE_MPI=1   both, in build/cuda-mpi: --device cuda under mpirun, gradients through NCCL
#   make test-lmeval     lm-evaluation-harness (PyPI, build/lmeval-venv) against eval-mc on a local task
#   make test-cuda       (a GPU machine) every CUDA op and the whole model against the CPU backend
#   make format          clang-format -i over the C/CUDA sources (.clang-format; clang-format 14)
#   make format-check    exits non-zero if any source differs from what clang-format would write

CC      ?= gcc
SAN     ?=
WERROR  ?= 0
USE_MPI ?= 0
USE_CUDA ?= 0
# the CUDA toolkit, only for USE_CUDA=1; CUDA_ARCH: the compute capability compiled for (90: H100/H200,
# also as PTX that newer GPUs compile at load)
CUDA    ?= /usr/local/cuda
NVCC    ?= $(CUDA)/bin/nvcc
CUDA_ARCH ?= 90
ifeq ($(USE_CUDA)$(USE_MPI),11)
  # both: --device cuda under mpirun, the float collectives through NCCL (src/comm_nccl.c)
  BUILD ?= build/cuda-mpi$(if $(SAN),-$(SAN),)
endif
ifeq ($(USE_CUDA),1)
  BUILD ?= build/cuda$(if $(SAN),-$(SAN),)
  CUDA_SKIP = src/cuda/none.c
  CU_SRC = $(wildcard src/cuda/*.cu)
else
  CUDA_SKIP = src/cuda/backend.c
  CU_SRC =
endif
ifeq ($(USE_MPI),1)
  # Debian's OpenMPI wrapper around gcc; the communicator over MPI instead of the single-process one
  ifneq ($(origin CC),command line)
    CC = mpicc
  endif
  BUILD ?= build/mpi$(if $(SAN),-$(SAN),)
  COMM_SKIP = src/comm_single.c $(if $(filter 1,$(USE_CUDA)),,src/comm_nccl.c)
else
  BUILD ?= build/$(if $(SAN),$(SAN),release)
  COMM_SKIP = src/comm_mpi.c src/comm_nccl.c
endif

WARN    = -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith
# -fno-math-errno lets sqrtf vectorise; it is not fast-math (NaN and Inf keep their meaning).
ARCH    ?= -march=native
CFLAGS  = -std=c11 -O2 -g $(ARCH) -fno-math-errno -fopenmp -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -Iinclude -Isrc
# Matmuls (src/cpu/gemm.c): oneDNN, or OpenBLAS with NL_GEMM=openblas. Both are Debian's OpenMP builds:
# their calls and our parallel loops then share one thread pool (OpenBLAS's pthread build's threads
# would spin against OpenMP's on every switch between a GEMM and an elementwise op).
BLAS_DIR ?= /usr/lib/$(shell gcc -print-multiarch)/openblas-openmp
LDLIBS  = -fopenmp -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -ldnnl -lpng -lz -lm
CFLAGS += $(XCFLAGS)
ifeq ($(WERROR),1)
  CFLAGS += -Werror
endif
ifneq ($(SAN),)
  CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all -O1
  LDLIBS += -fsanitize=$(SAN)
endif
NVCCFLAGS = -O2 -std=c++17 -gencode arch=compute_$(CUDA_ARCH),code=[sm_$(CUDA_ARCH),compute_$(CUDA_ARCH)] \
            -Iinclude -Isrc -Xcompiler -Wall,-Wextra $(if $(filter 1,$(WERROR)),-Werror all-warnings,)
ifeq ($(USE_CUDA),1)
  CFLAGS += -isystem $(CUDA)/include
  LDLIBS += -L$(CUDA)/lib64 -Wl,-rpath,$(CUDA)/lib64 -lcublasLt -lcudart -lstdc++
endif
ifeq ($(USE_CUDA)$(USE_MPI),11)
  CFLAGS += -DNL_NCCL
  LDLIBS += -lnccl
endif

LIB_SRC  = $(filter-out $(COMM_SKIP) $(CUDA_SKIP),$(wildcard src/*.c src/cpu/*.c src/cuda/*.c))
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.o)
PIC_OBJ  = $(LIB_SRC:%.c=$(BUILD)/pic/%.o) $(CU_SRC:%.cu=$(BUILD)/pic/%.o)
TEST_SRC = $(wildcard tests/*.c)
TEST_OBJ = $(TEST_SRC:%.c=$(BUILD)/%.o)

PREFIX  ?= /usr/local
VERSION  = $(shell sed -n 's/^\#define NL_VERSION "\([^"]*\)".*/\1/p' include/normlab.h)

all: $(BUILD)/normlab $(BUILD)/libnormlab.so $(BUILD)/examples/train_api

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	@echo "  NVCC $<"
	@$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/pic/%.o: %.cu
	@mkdir -p $(dir $@)
	@echo "  NVCC -fPIC $<"
	@$(NVCC) $(NVCCFLAGS) -Xcompiler -fPIC -MMD -MP -c $< -o $@

# the shared library gets its own position-independent objects; the binary and libnormlab.a keep
# the non-PIC code the benchmarks measure
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC -fPIC $<"
	@$(CC) $(CFLAGS) -fPIC -MMD -MP -c $< -o $@

$(BUILD)/libnormlab.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libnormlab.so: $(PIC_OBJ)
	$(CC) -shared -Wl,-soname,libnormlab.so $^ -o $@ $(LDLIBS)

# the example sees only the public header
$(BUILD)/examples/train_api: examples/train_api.c include/normlab.h $(BUILD)/libnormlab.a
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Isrc,$(CFLAGS)) $< -o $@ $(BUILD)/libnormlab.a $(LDLIBS)

# normlab.pc is written for the PREFIX of this install
install: $(BUILD)/normlab $(BUILD)/libnormlab.a $(BUILD)/libnormlab.so
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/normlab/gpt2-bpe
	install -m 755 $(BUILD)/normlab $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/libnormlab.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libnormlab.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/normlab.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 data/tinyshakespeare.txt data/README.md $(DESTDIR)$(PREFIX)/share/normlab/
	install -m 644 data/gpt2-bpe/encoder.json data/gpt2-bpe/vocab.bpe data/gpt2-bpe/LICENSE $(DESTDIR)$(PREFIX)/share/normlab/gpt2-bpe/
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: normlab\nDescription: GPT trainer with switchable normalization placement\nVersion: %s\nLibs: -L$${libdir} -Wl,-rpath,$${libdir} -lnormlab\nLibs.private: %s\nCflags: -I$${includedir}\n' \
	  '$(abspath $(PREFIX))' '$(VERSION)' '$(LDLIBS)' > $(DESTDIR)$(PREFIX)/lib/pkgconfig/normlab.pc

$(BUILD)/normlab: $(BUILD)/tools/normlab.o $(BUILD)/libnormlab.a
	$(CC) $^ -o $@ $(LDLIBS)

$(BUILD)/nl_tests: $(TEST_OBJ) $(BUILD)/libnormlab.a
	$(CC) $^ -o $@ $(LDLIBS)

test: $(BUILD)/normlab $(BUILD)/nl_tests $(BUILD)/examples/train_api
	NORMLAB_BIN=$(BUILD)/normlab NORMLAB_SAN=$(SAN) $(BUILD)/nl_tests

# the MPI build, then the communicator and sweep tests under mpirun (2 and 3 ranks) and a sweep without
# mpirun (MPI singleton); NORMLAB_REQUIRE_CLUSTER=1: a test that cannot run fails
test-mpi:
	$(MAKE) USE_MPI=1 all build/mpi/nl_tests
	NORMLAB_BIN=build/mpi/normlab NORMLAB_REQUIRE_CLUSTER=1 build/mpi/nl_tests comm sweep_mpi sweep_resume dp_equiv dp_resume dp_faults dp_overlap dp_watchdog

# the CUDA build's device tests (tests/cuda/cuda_tests.c): needs a GPU; exits non-zero without one
test-cuda:
	$(MAKE) USE_CUDA=1 all build/cuda/nl_cuda_tests
	NORMLAB_BIN=build/cuda/normlab build/cuda/nl_cuda_tests

# EleutherAI's lm-evaluation-harness against eval-mc (tests/lmeval/run.sh): installs
# scripts/requirements-lmeval.txt into build/lmeval-venv on first use (about 100 MB of wheels)
test-lmeval: $(BUILD)/normlab
	NL_BIN=$(BUILD)/normlab bash tests/lmeval/run.sh

$(BUILD)/nl_cuda_tests: $(BUILD)/tests/cuda/cuda_tests.o $(BUILD)/tests/check.o $(BUILD)/libnormlab.a
	$(CC) $^ -o $@ $(LDLIBS)

asan:
	$(MAKE) SAN=address test
ubsan:
	$(MAKE) SAN=undefined test

# the papers' protocol (experiments/protocol.sh; hours of CPU, by hand, not CI): knobs by environment
protocol: build/release/normlab
	bash experiments/protocol.sh

# issue 20's family studies (experiments/family.sh; about 65 min of one core, by hand, not CI)
family: build/release/normlab
	bash experiments/family.sh

bench: $(BUILD)/normlab build/release/gemm_bench
	bash bench/bench.sh

# the communicator's all-reduce under mpirun -np 2 (docs/scaling.md)
bench-allreduce:
	$(MAKE) USE_MPI=1 build/mpi/allreduce_bench
	mpirun --allow-run-as-root --oversubscribe -np 2 build/mpi/allreduce_bench

build/mpi/allreduce_bench: bench/allreduce_bench.c build/mpi/libnormlab.a
	$(CC) $(CFLAGS) $< -o $@ build/mpi/libnormlab.a $(LDLIBS)

# does a nonblocking all-reduce progress during computation? (docs/scaling.md)
bench-mpi-progress:
	$(MAKE) USE_MPI=1 build/mpi/mpi_progress
	mpirun --allow-run-as-root --oversubscribe -np 2 build/mpi/mpi_progress

build/mpi/mpi_progress: bench/mpi_progress.c
	$(CC) $(CFLAGS) $< -o $@ -pthread

bench-bpe:
	bash bench/bpe_bench.sh

bench-denormal: $(BUILD)/normlab
	BIN=$(BUILD)/normlab bash bench/denormal.sh

build/release/bpe_bench: bench/bpe_bench.c build/release/libnormlab.a
	$(CC) $(CFLAGS) $< -o $@ build/release/libnormlab.a $(LDLIBS)

build/release/gemm_bench: bench/gemm_bench.c build/release/libnormlab.a
	$(CC) $(CFLAGS) $< -o $@ build/release/libnormlab.a $(LDLIBS)

clean:
	rm -rf build

# ---- reliability (docs/reliability.md) ----
FUZZ_SECONDS ?= 60
FUZZ_NAMES = safetensors ckpt shard config metrics tboard idx png
FUZZ_BUILD = build/fuzz
FUZZ_SAN = fuzzer-no-link,address,undefined
FUZZ_BINS = $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)

fuzz-lib:
	$(MAKE) CC=clang BUILD=$(FUZZ_BUILD) SAN=$(FUZZ_SAN) XCFLAGS="-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -Wno-pass-failed" $(FUZZ_BUILD)/libnormlab.a

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h fuzz-lib
	clang -std=c11 -O1 -g -fopenmp -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION \
	  -Iinclude -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $< $(FUZZ_BUILD)/libnormlab.a -o $@ $(LDLIBS)

fuzz: $(FUZZ_BINS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh $(FUZZ_NAMES)
fuzz-regress: $(FUZZ_BINS)
	FUZZ_SECONDS=0 bash fuzz/run.sh $(FUZZ_NAMES)

# valgrind does not know every instruction -march=native may emit (AVX-512): a baseline x86-64 build
valgrind:
	$(MAKE) BUILD=build/valgrind ARCH= build/valgrind/normlab
	bash scripts/valgrind.sh build/valgrind/normlab

# ---- formatting (.clang-format): Debian 12's clang-format 14 (scripts/deps.sh); other versions format
# some constructs differently, so both targets refuse them. src/unicode_classes.c is generated.
CLANG_FORMAT ?= clang-format
FORMAT_SRC = $(filter-out src/unicode_classes.c,$(sort $(wildcard src/*.[ch] src/cpu/*.[ch] src/cuda/*.[ch] \
  src/cuda/*.cu src/cuda/*.cuh include/*.h tests/*.[ch] tests/cuda/*.[ch] fuzz/*.[ch] bench/*.[ch] tools/*.[ch] \
  examples/*.[ch])))
FORMAT_VERSION_OK = $(CLANG_FORMAT) --version 2>/dev/null | grep -q 'version 14\.' || \
  { echo "make $@: needs clang-format 14 (Debian 12's clang-format package, scripts/deps.sh); found: $$($(CLANG_FORMAT) --version 2>&1 | head -1)" >&2; exit 2; }

format:
	@$(FORMAT_VERSION_OK)
	$(CLANG_FORMAT) --style=file -i $(FORMAT_SRC)
format-check:
	@$(FORMAT_VERSION_OK)
	@$(CLANG_FORMAT) --style=file --dry-run -Werror $(FORMAT_SRC) && echo "format-check: $(words $(FORMAT_SRC)) files as clang-format writes them"


.PHONY: all test test-mpi test-cuda test-lmeval asan ubsan protocol family bench bench-allreduce bench-mpi-progress bench-bpe bench-denormal install clean fuzz fuzz-lib fuzz-regress valgrind format format-check
-include $(LIB_OBJ:.o=.d) $(PIC_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/tools/normlab.d $(BUILD)/tests/cuda/cuda_tests.d
