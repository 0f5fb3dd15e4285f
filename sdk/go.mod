module github.com/platoim/plato/sdk

go 1.26
