# The commands a new user needs. Each one installs what is missing first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DRAPPORT_WERROR=ON
endif

.PHONY: deps test-deps build test demo bench bench-quick bench-deps bench-build clean format

deps:
	./deploy/install-deps.sh

build: deps
	cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j$(JOBS)

# Packages only the tests need: Debian's chromium renders the replay report
# (tests/report) headless.
TEST_PACKAGES = chromium

test-deps:
	./deploy/install-deps.sh $(TEST_PACKAGES)

test: test-deps build
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS)

demo: build
	./$(BUILD_DIR)/rapport demo

# Benchmarks (bench/README.md). `make bench` takes about half an hour on 2
# cores; `make bench-quick` (100k customers only) a few minutes. Data sets
# are cached in bench/data/, keyed by the generator's arguments.
BENCH_BUILD_DIR ?= build-release
# The peers' runtimes: Debian's nodejs/npm only when no node is installed.
BENCH_PACKAGES = python3 python3-plyvel python3-confluent-kafka util-linux \
	$(if $(shell command -v node),,nodejs) $(if $(shell command -v npm),,npm)

bench-deps:
	./deploy/install-deps.sh $(BENCH_PACKAGES)

bench/peers/node/node_modules/.package-lock.json: bench/peers/node/package.json bench/peers/node/package-lock.json | bench-deps
	cd bench/peers/node && npm ci --no-audit --no-fund

bench-build: bench-deps bench/peers/node/node_modules/.package-lock.json
	cmake -S . -B $(BENCH_BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DRAPPORT_BENCH=ON -DRAPPORT_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build $(BENCH_BUILD_DIR) -j$(JOBS) --target rapport rapport_bench

bench: bench-build
	./$(BENCH_BUILD_DIR)/rapport_bench --rapport $(BENCH_BUILD_DIR)/rapport --presets 100k,1M,5M --out bench/results.md

bench-quick: bench-build
	./$(BENCH_BUILD_DIR)/rapport_bench --rapport $(BENCH_BUILD_DIR)/rapport --presets 100k --quick --out bench/data/results-quick.md

clean:
	rm -rf $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')
