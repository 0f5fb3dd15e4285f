package platform_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform"
	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// TestInProcessLinkCarriesTrafficAndFailover runs a gateway and a state server in one process
// (as `plato up` does) with state.in_process_link on, next to a second state server in a platform
// of its own (reached over Kitex). Logins, uplinks and at-least-once pushes work; the calls
// between the process's gateway and its state server went in-process (both ways); and when that
// state server stops, its devices move to the other one as after a refused connection (ADR 0009):
// same sockets, unACKed downlinks sent again, uplink seqs carried on.
func TestInProcessLinkCarriesTrafficAndFailover(t *testing.T) {
	biz := platformtest.StartBusiness(t)
	cfg := platformtest.Config(t)
	platformtest.SetBusiness(&cfg, biz.Addr)
	cfg.State.ID = "state-1"
	front := platformtest.Start(t, cfg, platform.RoleNATS, platform.RoleState, platform.RoleGateway)
	if front.Local == nil {
		t.Fatal("a process with a gateway and a state server has no in-process link")
	}
	c := platformtest.Config(t)
	platformtest.SetBusiness(&c, biz.Addr)
	c.NATS.URL = front.NATS.ClientURL()
	c.State.ID = "state-2"
	c.Admin.Addr = ""
	other := platformtest.Start(t, c, platform.RoleState)
	if other.Local != nil {
		t.Fatal("a process without a gateway has an in-process link")
	}
	poll.Until(t, "the gateway to see both state servers", func() bool { return len(front.Gateway.StateServers()) == 2 })
	signer := mustSigner(t, platformtest.Secret)
	api2 := platformtest.StateClient(t, other.State.Addr())
	caller := platformtest.Caller("demo")
	ctx := context.Background()

	const n = 12
	devs := make([]*rawConn, n)
	dids := make([]string, n)
	for i := range devs {
		dids[i] = fmt.Sprintf("dev-%02d", i)
		devs[i] = rawDial(t, front.Gateway.Addr())
		devs[i].login(signer, dids[i])
		devs[i].send(protocol.SigUplink, 1, []byte("one"))
		if f := devs[i].next(); f.Signal != protocol.SigUplinkAck || f.Seq != 1 {
			t.Fatalf("%s: uplink answer %s", dids[i], f)
		}
	}
	if _, err := api2.Bind(ctx, &api.BindRequest{Caller: caller, Session: "crew", Dids: dids}); err != nil {
		t.Fatal(err)
	}
	local := front.State.SessionMembers("demo", "crew")
	if len(local) == 0 || len(local) == n {
		t.Fatalf("state-1 holds %d of %d devices; the test needs some on each", len(local), n)
	}
	msgIDs := map[string]int64{}
	for i, did := range dids {
		resp, err := api2.Push(ctx, &api.PushRequest{Caller: caller, Dids: []string{did}, Payload: []byte("unacked"), Qos: api.QoS_AT_LEAST_ONCE})
		if err != nil || resp.Targets[0].Status != api.PushStatus_SENT {
			t.Fatalf("push to %s: %+v %v", did, resp, err)
		}
		msgIDs[did] = resp.MsgId
		if f := devs[i].next(); f.Signal != protocol.SigDownlink || f.Seq != 1 {
			t.Fatalf("%s: got %s, want downlink seq 1", did, f)
		}
	}
	// The local devices' logins, uplinks and pushes crossed in-process, both ways; the gateway's
	// pings of its state server too.
	poll.Until(t, "a ping of the local state server", func() bool { return front.Local.Calls()["Ping"] > 0 })
	calls := front.Local.Calls()
	if calls["Deliver"] < int64(2*len(local)) || calls["Push"] == 0 {
		t.Fatalf("in-process calls %v: want at least %d Deliver (a login and an uplink each of state-1's devices) and some Push", calls, 2*len(local))
	}

	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := front.State.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	for i, did := range dids {
		if !slices.Contains(local, did) {
			continue
		}
		msgs, retransmit := devs[i].downlinks(1)
		if msgs[1] != uint64(msgIDs[did]) || !retransmit[1] {
			t.Errorf("%s after the move: %v %v, want msg %d again on seq 1, flagged", did, msgs, retransmit, msgIDs[did])
		}
	}
	poll.Until(t, "every device on state-2", func() bool { return len(other.State.SessionMembers("demo", "crew")) == n })
	for i, did := range dids {
		devs[i].send(protocol.SigUplink, 1, []byte("one"))
		devs[i].send(protocol.SigUplink, 2, []byte("two"))
		for _, want := range []protocol.Code{protocol.CodeDuplicate, 0} {
			f := devs[i].next()
			var a protocol.Ack
			if f.Signal != protocol.SigUplinkAck || a.Decode(f.Body) != nil || a.Code != want {
				t.Fatalf("%s: %s %+v, want UplinkAck %d", did, f, a, want)
			}
		}
	}
	if d := len(biz.Events(api.EventKind_DISCONNECTED, "")); d != 0 {
		t.Errorf("%d DISCONNECTED events, but every connection lives on", d)
	}
}

// TestInProcessLinkOff: with state.in_process_link false the process's roles talk over Kitex, as
// between processes, and the platform builds no directory.
func TestInProcessLinkOff(t *testing.T) {
	biz := platformtest.StartBusiness(t)
	cfg := platformtest.Config(t)
	platformtest.SetBusiness(&cfg, biz.Addr)
	cfg.State.InProcessLink = false
	p := platformtest.Start(t, cfg, platform.RoleNATS, platform.RoleState, platform.RoleGateway)
	if p.Local != nil {
		t.Fatal("state.in_process_link false built an in-process link")
	}
	signer := mustSigner(t, platformtest.Secret)
	d := rawDial(t, p.Gateway.Addr())
	d.login(signer, "dev-off")
	d.send(protocol.SigUplink, 1, []byte("one"))
	if f := d.next(); f.Signal != protocol.SigUplinkAck || f.Seq != 1 {
		t.Fatalf("uplink answer %s", f)
	}
}
