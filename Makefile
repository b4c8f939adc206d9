# normlab -- see README.md. Each configuration builds into its own directory under build/.
#   make                 the normlab binary and libnormlab.a (build/release)
#   make test            build and run the test suite (needs /usr/bin/python3 with torch for the twin tests)
#   make asan / ubsan    the test suite under AddressSanitizer / UndefinedBehaviorSanitizer
#   make bench           the speed benchmark against the PyTorch twin (bench/bench.sh)
#   make WERROR=1        warnings are errors (CI)

CC      ?= gcc
SAN     ?=
WERROR  ?= 0
BUILD   ?= build/$(if $(SAN),$(SAN),release)

WARN    = -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith
CFLAGS  = -std=c11 -O2 -g -march=native -fopenmp -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -Iinclude -Isrc
LDLIBS  = -fopenmp -lopenblas -lm
ifeq ($(WERROR),1)
  CFLAGS += -Werror
endif
ifneq ($(SAN),)
  CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all -O1
  LDLIBS += -fsanitize=$(SAN)
endif

LIB_SRC  = $(wildcard src/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC = $(wildcard tests/*.c)
TEST_OBJ = $(TEST_SRC:%.c=$(BUILD)/%.o)

all: $(BUILD)/normlab

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libnormlab.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/normlab: $(BUILD)/tools/normlab.o $(BUILD)/libnormlab.a
	$(CC) $^ -o $@ $(LDLIBS)

$(BUILD)/nl_tests: $(TEST_OBJ) $(BUILD)/libnormlab.a
	$(CC) $^ -o $@ $(LDLIBS)

test: $(BUILD)/normlab $(BUILD)/nl_tests
	NORMLAB_BIN=$(BUILD)/normlab $(BUILD)/nl_tests

asan:
	$(MAKE) SAN=address test
ubsan:
	$(MAKE) SAN=undefined test

bench: $(BUILD)/normlab build/release/sgemm_bench
	bash bench/bench.sh

build/release/sgemm_bench: bench/sgemm_bench.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -D_POSIX_C_SOURCE=200809L $< -o $@ -lopenblas

clean:
	rm -rf build

.PHONY: all test asan ubsan bench clean
-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/tools/normlab.d
