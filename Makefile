# Plato: `make up` runs the platform on this machine, `make test` runs every test.
GO        ?= go
BIN       := bin/plato
GOFLAGS_T := -race -count=1 -timeout 12m
# The SDK is one Go module per audience (docs/architecture.md); each is tested and vetted on its own.
SDK_MODULES := sdk sdk/stage sdk/business

.PHONY: up build plugins test vet fmt fmt-check gen bench clean

up: build ## build and run the whole platform with configs/plato.yaml
	./$(BIN) up

build: plugins ## build bin/plato and the reference plugins
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/plato

# Plugins ship without the symbol table and DWARF (-s -w: a third smaller; panics still name
# functions and lines) and without this machine's paths (-trimpath).
PLUGIN_FLAGS := -trimpath -ldflags='-s -w'

plugins: ## build each plugins/<name> into bin/plugins/<name>
	@mkdir -p bin/plugins
	@for d in plugins/*/; do \
		n=$$(basename $$d); [ -f $$d/main.go ] || continue; \
		echo "$(GO) build $(PLUGIN_FLAGS) -o bin/plugins/$$n ./plugins/$$n"; \
		$(GO) build $(PLUGIN_FLAGS) -o bin/plugins/$$n ./plugins/$$n || exit 1; \
	done

test: fmt-check vet ## every test, with the race detector, every module
	$(GO) test $(GOFLAGS_T) ./...
	@for m in $(SDK_MODULES); do \
		echo "cd $$m && $(GO) test $(GOFLAGS_T) ./..."; \
		(cd $$m && $(GO) test $(GOFLAGS_T) ./...) || exit 1; \
	done
	@# Allocation tests skip themselves under -race, which allocates: run them once without it.
	$(GO) test -count=1 -run 'Alloc|DoesNotAllocate|AllocatesNothing' ./internal/batch ./core/ipconf ./internal/telemetry ./internal/rpc ./core/gateway ./core/state
	cd sdk/stage && $(GO) test -count=1 -run 'Allocates' .

vet:
	$(GO) vet ./...
	@for m in $(SDK_MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

fmt: ## gofmt everything but generated code
	gofmt -w $$(git ls-files '*.go' | grep -v '/kitex_gen/')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '/kitex_gen/')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

gen: ## regenerate Kitex code from idl/*.thrift and the stage protocol's gRPC code
	@# The fleet's internal services (fleet.thrift: gateway <-> state) live in the server module;
	@# the business contract (plato.thrift) in the business SDK module, under sdk/business/rpc.
	rm -rf internal/rpc/kitex_gen sdk/business/rpc
	$(GO) tool kitex -deep-copy-api -module github.com/platoim/plato -gen-path internal/rpc/kitex_gen idl/fleet.thrift
	mkdir -p bin/gen && $(GO) build -o bin/gen/kitex github.com/cloudwego/kitex/tool/cmd/kitex
	cd sdk/business && ../../bin/gen/kitex -module github.com/platoim/plato/sdk/business -gen-path rpc ../../idl/plato.thrift
	@command -v protoc >/dev/null || { echo "make gen needs protoc (Debian: apt-get install protobuf-compiler)"; exit 1; }
	mkdir -p bin/gen && $(GO) build -o bin/gen/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	cd sdk/stage/internal/pb && PATH=$(CURDIR)/bin/gen:$$PATH protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative stage.proto

bench: ## microbenchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./...
	@for m in $(SDK_MODULES); do (cd $$m && $(GO) test -run '^$$' -bench . -benchmem ./...) || exit 1; done

clean:
	rm -rf bin data
