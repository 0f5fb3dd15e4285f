package rpc_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	stateservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/state"
)

// A peer whose process is gone refuses the connection: Refused says so, and KindOf calls it a
// connect error. A peer that answers with an error is not refused.
func TestRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cli, err := stateservice.NewClient("plato-state", rpc.Client(addr, time.Second)...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.Ping(context.Background(), &fleet.PingRequest{})
	if err == nil || !rpc.Refused(err) || rpc.KindOf(err) != rpc.ErrConnect {
		t.Fatalf("a call to a closed port: %v (refused %v, kind %v), want refused", err, rpc.Refused(err), rpc.KindOf(err))
	}
	if rpc.Refused(errors.New("handler failed")) || rpc.Refused(context.DeadlineExceeded) {
		t.Error("errors that are not a refused dial were called refused")
	}
}
