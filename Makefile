# Plato: `make up` runs the platform on this machine, `make test` runs every test.
GO        ?= go
BIN       := bin/plato
GOFLAGS_T := -race -count=1 -timeout 12m

.PHONY: up build plugins test vet fmt fmt-check gen bench clean

up: build ## build and run the whole platform with configs/plato.yaml
	./$(BIN) up

build: plugins ## build bin/plato and the reference plugins
	$(GO) build -o $(BIN) ./cmd/plato

plugins: ## build each plugins/<name> into bin/plugins/<name>
	@mkdir -p bin/plugins
	@for d in plugins/*/; do \
		n=$$(basename $$d); [ -f $$d/main.go ] || continue; \
		echo "$(GO) build -o bin/plugins/$$n ./plugins/$$n"; \
		$(GO) build -o bin/plugins/$$n ./plugins/$$n || exit 1; \
	done

test: fmt-check vet ## every test, with the race detector, both modules
	$(GO) test $(GOFLAGS_T) ./...
	cd sdk && $(GO) test $(GOFLAGS_T) ./...
	@# Allocation tests skip themselves under -race, which allocates: run them once without it.
	$(GO) test -count=1 -run 'Alloc|DoesNotAllocate|AllocatesNothing' ./core/batch ./core/ipconf ./core/telemetry
	cd sdk && $(GO) test -count=1 -run 'Allocates' ./stage

vet:
	$(GO) vet ./...
	cd sdk && $(GO) vet ./...

fmt: ## gofmt everything but generated code
	gofmt -w $$(git ls-files '*.go' | grep -v '/kitex_gen/')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '/kitex_gen/')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

gen: ## regenerate Kitex code from idl/*.thrift and the stage protocol's gRPC code
	@# Internal services (gateway <-> state) live in the server module; what business servers
	@# use (business.thrift, plato.thrift) lives in the sdk module, under sdk/rpc.
	rm -rf idl/kitex_gen sdk/rpc
	for f in idl/gateway.thrift idl/state.thrift; do \
		$(GO) tool kitex -module github.com/platoim/plato -gen-path idl/kitex_gen $$f || exit 1; \
	done
	mkdir -p bin/gen && $(GO) build -o bin/gen/kitex github.com/cloudwego/kitex/tool/cmd/kitex
	for f in business.thrift plato.thrift; do \
		(cd sdk && ../bin/gen/kitex -module github.com/platoim/plato/sdk -gen-path rpc ../idl/$$f) || exit 1; \
	done
	@command -v protoc >/dev/null || { echo "make gen needs protoc (Debian: apt-get install protobuf-compiler)"; exit 1; }
	mkdir -p bin/gen && $(GO) build -o bin/gen/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	cd sdk/stage/internal/pb && PATH=$(CURDIR)/bin/gen:$$PATH protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative stage.proto

bench: ## microbenchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./...
	cd sdk && $(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin data
