# Plato: `make up` runs the platform on this machine, `make test` runs every test.
GO        ?= go
BIN       := bin/plato
GOFLAGS_T := -race -count=1 -timeout 12m

.PHONY: up build test vet fmt fmt-check gen bench clean

up: build ## build and run the whole platform with configs/plato.yaml
	./$(BIN) up

build: ## build bin/plato
	$(GO) build -o $(BIN) ./cmd/plato

test: fmt-check vet ## every test, with the race detector, both modules
	$(GO) test $(GOFLAGS_T) ./...
	cd sdk && $(GO) test $(GOFLAGS_T) ./...

vet:
	$(GO) vet ./...
	cd sdk && $(GO) vet ./...

fmt: ## gofmt everything but generated code
	gofmt -w $$(git ls-files '*.go' | grep -v '/kitex_gen/')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '/kitex_gen/')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

gen: ## regenerate Kitex code from idl/*.thrift
	rm -rf idl/kitex_gen
	for f in idl/gateway.thrift idl/state.thrift idl/business.thrift; do \
		$(GO) tool kitex -module github.com/platoim/plato -gen-path idl/kitex_gen $$f || exit 1; \
	done

bench: ## microbenchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./...
	cd sdk && $(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin data
